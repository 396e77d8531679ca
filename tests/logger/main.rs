//! The Event Logger in-process and its committed files: every data-driven case of
//! `fixtures/*.json` as a test of its own, the embedded mode under concurrency and failing
//! output, the OpenAPI document and docs page, and the Docker files.
//!
//! A custom harness (libtest-mimic, `harness = false` in Cargo.toml) so that each fixture case is
//! a named test that `cargo test` lists, filters and counts; the other tests are registered
//! through [`trials!`] by each module's `tests()`. Output and summary are the standard harness's.

#[path = "../common"]
mod common {
    pub mod app;
    pub mod datadir;
    pub mod event;
    pub mod http;
    pub mod nginx;
    pub mod output;
    pub mod wait;
}

mod compose;
mod embedded;
mod fixtures;
mod openapi;

/// Trials for plain test functions, named `<module>::<function>` as the standard harness names
/// them; a panic fails the test.
#[macro_export]
macro_rules! trials {
    ($($test:ident),+ $(,)?) => {{
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        vec![$(
            libtest_mimic::Trial::test(format!("{module}::{}", stringify!($test)), || {
                $test();
                Ok(())
            })
        ),+]
    }};
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = compose::tests();
    trials.extend(embedded::tests());
    trials.extend(openapi::tests());
    trials.extend(fixtures::cases());
    libtest_mimic::run(&args, trials).exit();
}
