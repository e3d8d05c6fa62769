//! The notice on SNS (moto, started by `make test`): published once with `MessageStructure: json`,
//! each subscriber gets its protocol's part: an SQS queue and an HTTP endpoint (a receiver on
//! loopback, which moto posts to as SNS would) get the JSON document inside SNS's envelope, the
//! email the readable text (moto sends no mail; its record of the publish shows the part SNS would
//! pick for an email subscriber).

use aws_adapters::testing::{available, endpoints, AwsWorld};
use aws_adapters::{structured_message, SnsNotifier, DOCUMENT_PROTOCOLS};
use serde_json::Value;
use state::{Notice, Notifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn notice() -> Notice {
    Notice {
        dedup_key: "0b5e0c51-6a4e-4d1e-9d1b-5d6f1c2a3b4c/notified".into(),
        subject: "Image processed: 0b5e0c51-6a4e-4d1e-9d1b-5d6f1c2a3b4c".into(),
        body: "Your image has been processed.\n\nid:       0b5e0c51\nname:     \"quoted\" \\ back\n"
            .into(),
        document: serde_json::json!({
            "version": 1,
            "id": "0b5e0c51-6a4e-4d1e-9d1b-5d6f1c2a3b4c",
            "status": "notified",
            "renditions": {"thumbnail": "https://d111111abcdef8.cloudfront.net/x/thumbnail.jpg?Expires=1&Signature=a~b_&Key-Pair-Id=K"},
            "name with \"quotes\" and \n": "\u{1}"
        })
        .to_string(),
    }
}

#[test]
fn the_message_has_the_text_for_email_and_default_and_the_document_for_programs() {
    let notice = notice();
    let parts: serde_json::Map<String, Value> =
        serde_json::from_str(&structured_message(&notice)).unwrap();
    assert_eq!(parts["default"], notice.body.as_str());
    assert_eq!(parts["email"], notice.body.as_str());
    for protocol in ["http", "https", "sqs", "lambda", "email-json"] {
        assert_eq!(parts[protocol], notice.document.as_str(), "{protocol}");
    }
    assert_eq!(parts.len(), 2 + DOCUMENT_PROTOCOLS.len());
    // SMS and mobile push get `default`: the text.
    assert!(!parts.contains_key("sms") && !parts.contains_key("application"));
}

/// Accepts one HTTP request on loopback and answers 200: its headers and body.
async fn receive_one(listener: TcpListener) -> (String, String) {
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body_start) = loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the headers ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8(buf[..end].to_vec()).unwrap(), end + 4);
        }
    };
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    while buf.len() < body_start + length {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let body = String::from_utf8(buf[body_start..body_start + length].to_vec()).unwrap();
    (head, body)
}

#[tokio::test]
async fn one_publish_gives_sqs_and_http_the_document_and_the_email_the_text() {
    if !available() {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    }
    let world = AwsWorld::create(endpoints().unwrap()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/hook", listener.local_addr().unwrap());
    world
        .sns
        .subscribe()
        .topic_arn(&world.topic_arn)
        .protocol("http")
        .endpoint(&endpoint)
        .send()
        .await
        .unwrap();
    let received = tokio::spawn(receive_one(listener));

    let notice = notice();
    let notifier = SnsNotifier::new(world.sns.clone(), world.topic_arn.clone());
    let message_id = notifier.publish(&notice).await.unwrap();

    // Published once: one message on the topic, with a part per protocol.
    let published = world.published().await;
    assert_eq!(published.len(), 1, "{published:?}");
    let sent = &published[&message_id];
    assert_eq!(sent.subject, notice.subject);
    assert_eq!(sent.part_for("email"), notice.body);
    assert_eq!(sent.part_for("sms"), notice.body, "default: the text");
    assert_eq!(sent.part_for("https"), notice.document);

    // The queue: SNS's envelope, whose Message is the document, byte for byte.
    let delivered = world.take_deliveries().await;
    assert_eq!(delivered.len(), 1);
    let d = &delivered[0];
    assert_eq!(d.envelope["Type"], "Notification");
    assert_eq!(d.envelope["TopicArn"], world.topic_arn.as_str());
    assert_eq!(d.message_id, message_id);
    assert_eq!(d.subject, notice.subject);
    assert_eq!(d.document, notice.document);
    let document: Value = serde_json::from_str(&d.document).unwrap();
    assert_eq!(document["name with \"quotes\" and \n"], "\u{1}");
    assert_eq!(d.email, notice.body);

    // The HTTP endpoint: the same envelope, posted as SNS posts it.
    let (head, body) = tokio::time::timeout(std::time::Duration::from_secs(10), received)
        .await
        .expect("moto posted to the endpoint")
        .unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    let envelope: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["MessageId"], message_id.as_str());
    assert_eq!(envelope["Message"], notice.document.as_str());
    assert_eq!(envelope["Subject"], notice.subject.as_str());
    assert_eq!(envelope["SignatureVersion"], "2");
    assert!(envelope["Signature"].is_string() && envelope["SigningCertURL"].is_string());
}
