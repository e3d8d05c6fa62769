//! The webhook outbox: a publish is recorded once per dedup key and queued, in the same
//! transaction, for the subscriptions confirmed at that moment; the pending ones are counted, not
//! queued; delivered and given-up rows are never due again.

use embedded_adapters::sqlite::{Attempted, Database, Publish};

fn publish(key: &str, subscriptions: &[&str]) -> Publish {
    Publish {
        dedup_key: key.into(),
        fresh_id: uuid::Uuid::new_v4().to_string(),
        subject: "Image processed".into(),
        body: "text".into(),
        document: r#"{"id":"x"}"#.into(),
        subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_publish_is_queued_once_for_the_confirmed_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("pipeline.db")).unwrap();
    let topic = "arn:aws:sns:local:000000000000:NoticeTopic".to_owned();
    let sub = db
        .webhook_subscription(
            topic.clone(),
            "http://127.0.0.1:9/a".into(),
            format!("{topic}:a"),
            "tok".into(),
        )
        .await
        .unwrap();
    assert!(!sub.confirmed);
    // Asked again, the stored one stands (its token too).
    let again = db
        .webhook_subscription(
            topic.clone(),
            "http://127.0.0.1:9/a".into(),
            format!("{topic}:b"),
            "other".into(),
        )
        .await
        .unwrap();
    assert_eq!(again, sub);
    assert!(db
        .queue_confirmation(sub.arn.clone(), "m0".into(), "confirm".into())
        .await
        .unwrap());
    assert!(!db
        .queue_confirmation(sub.arn.clone(), "m1".into(), "confirm".into())
        .await
        .unwrap());

    // Pending: the notice is recorded but not queued.
    let early = db
        .record_publish(publish("early", &[&sub.arn]))
        .await
        .unwrap();
    assert!(early.new);
    assert_eq!((early.queued, early.unconfirmed), (0, 1));

    assert_eq!(
        db.confirm_webhook(topic.clone(), "wrong".into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.confirm_webhook(topic.clone(), "tok".into())
            .await
            .unwrap(),
        Some(sub.arn.clone())
    );
    // The queued confirmation is done with once confirmed.
    assert!(db.due_webhooks(i64::MAX, 10).await.unwrap().is_empty());

    let first = db.record_publish(publish("k", &[&sub.arn])).await.unwrap();
    assert_eq!((first.new, first.queued, first.unconfirmed), (true, 1, 0));
    let repeat = db.record_publish(publish("k", &[&sub.arn])).await.unwrap();
    assert_eq!(repeat.message_id, first.message_id);
    assert_eq!((repeat.new, repeat.queued), (false, 0));

    let due = db.due_webhooks(i64::MAX, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].message_id, first.message_id);
    assert_eq!(due[0].message, r#"{"id":"x"}"#);
    db.webhook_attempted(due[0].id, Attempted::RetryAt(i64::MAX - 1))
        .await
        .unwrap();
    assert!(db
        .due_webhooks(state::now_ms(), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.next_webhook_due().await.unwrap(), Some(i64::MAX - 1));
    let due = db.due_webhooks(i64::MAX, 10).await.unwrap();
    assert_eq!(due[0].attempts, 1);
    db.webhook_attempted(due[0].id, Attempted::Delivered)
        .await
        .unwrap();
    assert!(db.due_webhooks(i64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(db.next_webhook_due().await.unwrap(), None);

    // Unsubscribed: what it had queued is given up, and it is gone.
    let queued = db.record_publish(publish("k2", &[&sub.arn])).await.unwrap();
    assert_eq!(queued.queued, 1);
    assert!(db.unsubscribe_webhook(sub.arn.clone()).await.unwrap());
    assert!(db.due_webhooks(i64::MAX, 10).await.unwrap().is_empty());
    let after = db.record_publish(publish("k3", &[&sub.arn])).await.unwrap();
    assert_eq!((after.queued, after.unconfirmed), (0, 1));
}
