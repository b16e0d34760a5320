//! UDP segmentation offload on and off: one thread sends `--datagrams` datagrams of `--size`
//! bytes (1400: what a3m sends off loopback) to another over loopback through
//! `UdpSocket::send_batch` / `recv_batch`, in three modes, alternating, `--runs` rounds:
//!
//! * `off`: no offload (one message per datagram, as on a kernel without GSO/GRO);
//! * `gso`: the sender segments, the receiver has no GRO (the kernel cuts the datagrams
//!   before queueing them, as a real network path would);
//! * `gso+gro`: the sender segments and the receiver takes coalesced buffers.
//!
//! It prints each run, then medians: datagrams/s, the CPU time of the sender and receiver
//! threads per 1000 datagrams, the system-wide softirq time (loopback's receive path, which
//! the kernel may charge to no thread), and system calls per 1000 datagrams. A window of
//! datagrams in flight, below the receive buffer, keeps loopback from dropping any (a drop
//! stops the run with an error). Loopback's MTU is 64 KiB, so segments are never cut on the
//! wire: this measures the system call and stack savings.
//!
//! ```sh
//! cargo run --release -p a3m-platform --example udp_gso_bench -- --datagrams 1000000 --runs 5
//! ```

use a3m_platform::reactor::{Events, Interest, Reactor, Token};
use a3m_platform::udp::{RecvBatch, SendBatch, UdpConfig, UdpSocket};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A receive that waits longer than this means datagrams were lost.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Gso,
    GsoGro,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::Gso, Mode::GsoGro];

    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Gso => "gso",
            Mode::GsoGro => "gso+gro",
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    seconds: f64,
    sender_cpu: f64,
    receiver_cpu: f64,
    softirq: f64,
    send_calls: u64,
    recv_calls: u64,
    /// Slots the receives filled (fewer than datagrams with GRO).
    slots: u64,
    /// Whether the sockets had the offload the mode asks for.
    offload_as_asked: bool,
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the kernel to fill.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(result, 0, "clock_gettime: {}", io::Error::last_os_error());
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// System-wide softirq time so far, in seconds (0 where /proc/stat is missing).
fn softirq_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    // cpu user nice system idle iowait irq softirq ...
    let ticks: f64 = line.split_whitespace().nth(7).and_then(|t| t.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// Datagrams received so far, and the sender's wait for the window to open.
struct Progress {
    received: AtomicU64,
    sender_waiting: AtomicBool,
    lock: Mutex<()>,
    opened: Condvar,
}

fn run(mode: Mode, total: u64, size: usize) -> io::Result<Outcome> {
    let config = UdpConfig {
        recv_buffer_size: Some(4 << 20),
        send_buffer_size: Some(4 << 20),
        ..UdpConfig::default()
    };
    let receiver = UdpSocket::bind_with("127.0.0.1:0".parse().unwrap(), &config)?;
    let sender = UdpSocket::bind_with("127.0.0.1:0".parse().unwrap(), &config)?;
    match mode {
        Mode::Off => {
            sender.disable_offload();
            receiver.disable_offload();
        }
        Mode::Gso => receiver.disable_offload(),
        Mode::GsoGro => {}
    }
    // Datagrams in flight: a 1400-byte datagram takes up to about 2.3 KiB of receive buffer.
    let window = (receiver.recv_buffer_size()? as u64 / 4096).clamp(64, 4096);
    let to = receiver.local_addr()?;
    let progress = Arc::new(Progress {
        received: AtomicU64::new(0),
        sender_waiting: AtomicBool::new(false),
        lock: Mutex::new(()),
        opened: Condvar::new(),
    });

    let receiving = {
        let progress = Arc::clone(&progress);
        std::thread::spawn(move || -> io::Result<(Duration, u64, u64, bool)> {
            let cpu = thread_cpu();
            let mut reactor = Reactor::new()?;
            reactor.register(&receiver, Token(0), Interest::READABLE)?;
            let mut events = Events::new();
            let mut batch = RecvBatch::new(64, 65_536);
            let (mut next, mut calls, mut slots) = (0u64, 0u64, 0u64);
            while next < total {
                match receiver.recv_batch(&mut batch) {
                    Ok(_) => {
                        calls += 1;
                        slots += batch.slots_filled() as u64;
                        for d in batch.iter() {
                            let seq = u64::from_le_bytes(d.data[..8].try_into().unwrap());
                            if seq != next || d.data.len() != size || d.truncated {
                                return Err(io::Error::other(format!(
                                    "datagram {seq} ({} bytes) where {next} was due",
                                    d.data.len()
                                )));
                            }
                            next += 1;
                        }
                        progress.received.store(next, Ordering::SeqCst);
                        if progress.sender_waiting.load(Ordering::SeqCst) {
                            let _guard = progress.lock.lock().unwrap();
                            progress.opened.notify_one();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        reactor.wait(&mut events, Some(PATIENCE))?;
                        if events.is_empty() {
                            return Err(io::Error::other(format!("lost after datagram {next}")));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((thread_cpu() - cpu, calls, slots, receiver.gro_enabled()))
        })
    };

    let gso = sender.gso_enabled();
    let softirq = softirq_seconds();
    let started = Instant::now();
    let cpu = thread_cpu();
    let mut reactor = Reactor::new()?;
    reactor.register(&sender, Token(0), Interest::WRITABLE)?;
    let mut events = Events::new();
    let mut batch = SendBatch::new(64, size);
    let (mut queued, mut sent, mut calls) = (0u64, 0u64, 0u64);
    while sent < total {
        while queued < total && queued - progress.received.load(Ordering::Relaxed) < window {
            let Some(slot) = batch.next_slot() else { break };
            slot[..8].copy_from_slice(&queued.to_le_bytes());
            batch.commit(to, size);
            queued += 1;
        }
        if batch.is_empty() {
            // The window is full: wait for the receiver to take half of it.
            let mut guard = progress.lock.lock().unwrap();
            progress.sender_waiting.store(true, Ordering::SeqCst);
            while queued - progress.received.load(Ordering::SeqCst) > window / 2 {
                guard = progress.opened.wait_timeout(guard, PATIENCE).unwrap().0;
            }
            progress.sender_waiting.store(false, Ordering::SeqCst);
            continue;
        }
        match sender.send_batch(&mut batch) {
            Ok(n) => {
                calls += 1;
                sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                calls += 1;
                reactor.wait(&mut events, Some(PATIENCE))?;
            }
            Err(e) => return Err(e),
        }
    }
    let sender_cpu = thread_cpu() - cpu;
    let (receiver_cpu, recv_calls, slots, gro) = receiving.join().expect("receiver panicked")?;
    let seconds = started.elapsed().as_secs_f64();
    let offload_as_asked = match mode {
        Mode::Off => !gso && !gro,
        Mode::Gso => gso && !gro,
        Mode::GsoGro => gso && gro,
    };
    Ok(Outcome {
        seconds,
        sender_cpu: sender_cpu.as_secs_f64(),
        receiver_cpu: receiver_cpu.as_secs_f64(),
        softirq: softirq_seconds() - softirq,
        send_calls: calls,
        recv_calls,
        slots,
        offload_as_asked,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn usage() -> ! {
    eprintln!("usage: udp_gso_bench [--datagrams N] [--size BYTES] [--runs R]");
    std::process::exit(2)
}

fn main() -> io::Result<()> {
    let (mut total, mut size, mut runs) = (1_000_000u64, 1400usize, 5usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--datagrams" => total = value.parse().unwrap_or_else(|_| usage()),
            "--size" => size = value.parse().unwrap_or_else(|_| usage()),
            "--runs" => runs = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if !(8..=65_507).contains(&size) || total == 0 || runs == 0 {
        usage();
    }
    println!("{total} datagrams of {size} bytes over 127.0.0.1, {runs} rounds of off/gso/gso+gro");
    let per_k = |seconds: f64| seconds * 1e6 / (total as f64 / 1000.0);
    let mut results: Vec<(Mode, Outcome)> = Vec::new();
    for round in 0..runs {
        // Alternate the order so that drifts in the machine's load spread over the modes.
        let mut order = Mode::ALL;
        order.rotate_left(round % Mode::ALL.len());
        for mode in order {
            let o = run(mode, total, size)?;
            println!(
                "round {round} {:>8}: {:>10.0} datagrams/s, cpu/1k: sender {:>6.1} us, \
                 receiver {:>6.1} us, softirq {:>6.1} us; send calls/1k {:>6.2}, \
                 recv calls/1k {:>6.2}, slots/datagram {:.3}{}",
                mode.name(),
                total as f64 / o.seconds,
                per_k(o.sender_cpu),
                per_k(o.receiver_cpu),
                per_k(o.softirq),
                o.send_calls as f64 * 1000.0 / total as f64,
                o.recv_calls as f64 * 1000.0 / total as f64,
                o.slots as f64 / total as f64,
                if o.offload_as_asked { "" } else { "  (offload unavailable here)" },
            );
            results.push((mode, o));
        }
    }
    println!();
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "median",
        "datagrams/s",
        "send us/1k",
        "recv us/1k",
        "sirq us/1k",
        "both us/1k",
        "sends/1k",
        "recvs/1k"
    );
    for mode in Mode::ALL {
        let of = |f: &dyn Fn(&Outcome) -> f64| {
            median(results.iter().filter(|(m, _)| *m == mode).map(|(_, o)| f(o)).collect())
        };
        println!(
            "{:>8} {:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.2} {:>10.2}",
            mode.name(),
            of(&|o| total as f64 / o.seconds),
            of(&|o| per_k(o.sender_cpu)),
            of(&|o| per_k(o.receiver_cpu)),
            of(&|o| per_k(o.softirq)),
            of(&|o| per_k(o.sender_cpu + o.receiver_cpu)),
            of(&|o| o.send_calls as f64 * 1000.0 / total as f64),
            of(&|o| o.recv_calls as f64 * 1000.0 / total as f64),
        );
    }
    Ok(())
}
