//! The usage example of README.md, run as a test so it stays true.

use std::time::Duration;

fn readme_example() -> Result<(), a3m::Error> {
    let sink_node = a3m::NodeBuilder::new("B").start()?;
    let source_node = a3m::NodeBuilder::new("A").peer("B", sink_node.local_addr()).start()?;
    let pull = sink_node.pull("sink")?;
    let push = source_node.push("source")?;
    push.link("B/sink")?;
    push.send(b"hello")?; // delivered exactly once, in order per link
    assert_eq!(pull.recv_timeout(Duration::from_secs(5))?, b"hello");
    Ok(())
}

#[test]
fn the_readme_example_runs() {
    readme_example().expect("the README example runs");
}
