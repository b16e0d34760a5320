//! A pub/sub broker: publishers and subscribers that only know the broker. The broker's
//! XSub socket links to the publishers, its XPub socket is linked by the subscribers; one
//! thread forwards publications one way and subscriptions the other (thesis §5.4.3–§5.4.4).
//! Runs a publisher, the broker and two subscribers in one process, on three nodes over
//! loopback UDP, and exits 0 once every subscriber got its messages.
//!
//! ```text
//! cargo run --example broker
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use a3m::{Error, Events, Interest, NodeBuilder, PollEvent, Poller, XPubSocket, XSubSocket};

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = NodeBuilder::new("source").bind("127.0.0.1:0".parse()?).start()?;
    let broker = NodeBuilder::new("broker")
        .bind("127.0.0.1:0".parse()?)
        .peer("source", source.local_addr())
        .start()?;
    let readers = NodeBuilder::new("readers")
        .bind("127.0.0.1:0".parse()?)
        .peer("broker", broker.local_addr())
        .start()?;

    // The broker: back end to the publishers, front end for the subscribers.
    let back = broker.xsub("back")?;
    let front = Arc::new(broker.xpub("front")?);
    back.link("source/news")?;
    let stop = Arc::new(AtomicBool::new(false));
    let forwarder = {
        let (stop, front) = (Arc::clone(&stop), Arc::clone(&front));
        thread::spawn(move || forward(&back, &front, &stop))
    };

    // Subscribers know only the broker.
    let weather = readers.subscriber("weather")?;
    weather.subscribe(b"weather.")?;
    let everything = readers.subscriber("everything")?;
    everything.subscribe(b"")?;
    for s in [&weather, &everything] {
        s.link("broker/front")?;
    }

    // The publisher knows nobody: the broker links to it. Its one subscriber is the broker,
    // subscribed to what the broker's subscribers want (here "weather." and "": everything).
    let news = source.publisher("news")?;
    front.wait_for_subscribers(2, TIMEOUT)?;
    news.wait_for_subscribers(1, TIMEOUT)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while news.subscriptions()? < 2 {
        if std::time::Instant::now() > deadline {
            return Err("the subscriptions did not reach the publisher".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
    let messages: [(&[u8], &[u8]); 4] = [
        (b"weather.paris", b"sunny"),
        (b"sport.rugby", b"24-12"),
        (b"weather.oslo", b"snow"),
        (b"markets.eur", b"1.09"),
    ];
    for (topic, body) in messages {
        news.publish_timeout(topic, body, TIMEOUT)?;
        println!("published {} {}", text(topic), text(body));
    }
    for (name, sub, want) in [("weather", &weather, 2), ("everything", &everything, 4)] {
        for _ in 0..want {
            let m = sub.recv_timeout(TIMEOUT)?;
            println!("{name:>10} got {} {}", text(&m.topic), text(&m.payload));
        }
    }
    stop.store(true, Ordering::Relaxed);
    forwarder.join().expect("forwarder thread")?;
    println!("every subscriber got its messages through the broker");
    Ok(())
}

/// The broker's loop: publications from `back` to `front`, subscriptions from `front` to
/// `back`, until `stop`.
fn forward(back: &XSubSocket, front: &XPubSocket, stop: &AtomicBool) -> a3m::Result<()> {
    let poller = Poller::new();
    poller.add(back.as_socket(), Interest::new(Events::IN))?;
    poller.add(front.as_socket(), Interest::new(Events::IN))?;
    let mut events = [PollEvent::EMPTY; 2];
    while !stop.load(Ordering::Relaxed) {
        let n = poller.wait(&mut events, Some(Duration::from_millis(50)))?;
        for ev in &events[..n] {
            if ev.id == front.as_socket().poll_id() {
                loop {
                    match front.try_recv_subscription() {
                        Ok(s) => {
                            println!(
                                "    broker: {} {}",
                                if s.subscribe { "subscribe" } else { "unsubscribe" },
                                text(&s.topic)
                            );
                            back.send_subscription(&s)?;
                        }
                        Err(Error::WouldBlock) => break,
                        Err(e) => return Err(e),
                    }
                }
            } else {
                loop {
                    match back.recv_multipart(Some(Duration::ZERO)) {
                        Ok(frames) => {
                            let (topic, rest) = frames.split_first().expect("a topic frame");
                            front.publish_multipart(topic, rest)?;
                        }
                        Err(Error::Timeout | Error::WouldBlock) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
