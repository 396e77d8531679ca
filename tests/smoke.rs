mod common;

#[test]
fn created_event_is_notified_and_processed() {
    let app = common::spawn_app();
    let event = app.create("u1", "hi");
    let id = event["event_id"].as_str().unwrap().to_owned();
    assert!(common::wait_until(
        std::time::Duration::from_secs(5),
        || { app.get(&format!("/events/{id}")).json()["status"] == "Processed" }
    ));
    let out = app.stop();
    assert_eq!(out.text(), format!("Event {id} has been sent to u1: hi\n"));
}
