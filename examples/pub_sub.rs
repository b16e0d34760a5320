//! Synchronized publish-subscribe, end to end on loopback: one publisher, three subscribers
//! with different topics, one of them deliberately slow. Nobody loses a message, each gets
//! exactly its topics in order, and the publisher slows to the slow one's pace.
//!
//! ```text
//! cargo run --example pub_sub
//! ```

use std::thread;
use std::time::{Duration, Instant};

use a3m::NodeBuilder;

const MESSAGES: u32 = 200;
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hub = NodeBuilder::new("hub").bind("127.0.0.1:0".parse()?).start()?;
    let readers = NodeBuilder::new("readers")
        .bind("127.0.0.1:0".parse()?)
        .peer("hub", hub.local_addr())
        .start()?;
    let publisher = hub.publisher("prices")?;

    // (tag, subscriptions, pause per message, window)
    let specs: [(&str, &[&[u8]], Duration, u32); 3] = [
        ("all", &[b""], Duration::ZERO, 100),
        ("fx", &[b"fx."], Duration::ZERO, 100),
        ("slow-stocks", &[b"stocks."], Duration::from_millis(2), 8),
    ];
    let mut handles = Vec::new();
    for (tag, topics, pause, window) in specs {
        let sub = readers.subscriber(tag)?;
        sub.set_options(sub.options()?.capacity(window))?;
        for t in topics {
            sub.subscribe(t)?;
        }
        sub.link("hub/prices")?;
        let topics: Vec<Vec<u8>> = topics.iter().map(|t| t.to_vec()).collect();
        handles.push(thread::spawn(move || -> a3m::Result<(String, u32)> {
            let mut expected = 0u32;
            let mut got = 0u32;
            // Each gets every message whose topic matches, in publishing order.
            while expected < MESSAGES {
                let topic = topic_of(expected);
                if !topics.iter().any(|p| topic.starts_with(p)) {
                    expected += 1;
                    continue;
                }
                let m = sub.recv_timeout(TIMEOUT)?;
                assert_eq!(m.topic, topic, "{tag}: out of order or missing");
                assert_eq!(m.payload, expected.to_be_bytes(), "{tag}");
                got += 1;
                expected += 1;
                thread::sleep(pause);
            }
            Ok((tag.to_string(), got))
        }));
    }
    publisher.wait_for_subscribers(3, TIMEOUT)?;

    let started = Instant::now();
    for i in 0..MESSAGES {
        publisher.publish_timeout(&topic_of(i), &i.to_be_bytes(), TIMEOUT)?;
    }
    let elapsed = started.elapsed();
    let stock_messages = (0..MESSAGES).filter(|&i| topic_of(i).starts_with(b"stocks.")).count();
    println!(
        "published {MESSAGES} messages in {elapsed:.2?} (the slow subscriber takes 2 ms for each \
         of its {stock_messages}: the publisher kept its pace, dropping nothing)"
    );
    for h in handles {
        let (tag, got) = h.join().expect("subscriber thread")?;
        println!("{tag:>12}: {got} messages, all of its topics, in order, none lost");
    }
    assert!(elapsed >= Duration::from_millis(2) * (stock_messages as u32 - 8 - 2));
    publisher.close(TIMEOUT)?;
    Ok(())
}

/// Alternates fx and stock topics.
fn topic_of(i: u32) -> Vec<u8> {
    if i.is_multiple_of(2) { format!("fx.eur{}", i % 3) } else { format!("stocks.s{}", i % 5) }
        .into_bytes()
}
