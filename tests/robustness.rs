//! Root tests of the input paths under misuse (issue 12): the API socket
//! with over-long, non-UTF-8 and nonsensical lines, clients that leave
//! before their reply, 64 clients at once; a node flooded with GIST-looking
//! datagrams by one peer still serves another, and works off a backlog
//! beyond one batch with nothing more arriving.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vlsp::model::paths::RunDir;
use vlsp::node::api::{Reply, Request};
use vlsp::testbed::{Options, Testbed};

fn socket(t: &vlsp::topology::Topology, node: &str) -> PathBuf {
    RunDir::new(&t.topo_name()).api_socket(node)
}

fn links(tb: &Testbed, node: &str) -> usize {
    match tb.client(node).unwrap().call(&Request::List).unwrap() {
        Reply::Links { links } => links.len(),
        r => panic!("{r:?}"),
    }
}

/// Reads one reply line from a raw connection.
fn reply_line(r: &mut BufReader<UnixStream>) -> Reply {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    serde_json::from_str(l.trim_end()).unwrap_or_else(|e| panic!("reply {l:?}: {e}"))
}

fn error_message(r: Reply) -> String {
    match r {
        Reply::Error { message, .. } => message,
        r => panic!("expected an error, got {r:?}"),
    }
}

#[test]
fn the_api_answers_bad_lines_with_errors_and_bounds_their_size() {
    if !require_root("api_bad_lines") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "a");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let path = socket(&t, "tb1");
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);

    // Not UTF-8: an error naming it, and the connection keeps serving.
    w.write_all(b"{\"op\":\"li\xffst\"}\n").unwrap();
    let m = error_message(reply_line(&mut r));
    assert!(m.contains("not UTF-8"), "{m}");
    // rate_bps 0: refused by the API, naming the field.
    w.write_all(br#"{"op":"setup","from":"VM1","to":"VM2","rate_bps":0}"#)
        .unwrap();
    w.write_all(b"\n").unwrap();
    let m = error_message(reply_line(&mut r));
    assert!(m.contains("rate_bps"), "{m}");
    w.write_all(b"{\"op\":\"list\"}\n").unwrap();
    assert!(matches!(reply_line(&mut r), Reply::Links { .. }));

    // 10 MB without a newline: one error, then the connection is closed
    // (the daemon stops reading; the rest of the write fails or is dropped).
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..10 {
            if w.write_all(&chunk).is_err() {
                return false;
            }
        }
        true
    });
    let m = error_message(reply_line(&mut r));
    assert!(m.contains("longer than 65536 bytes"), "{m}");
    let mut rest = vec![];
    let _ = r.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "more after the error: {} bytes",
        rest.len()
    );
    assert!(!writer.join().unwrap(), "the daemon read 10 MB of one line");

    // The node still serves, and nothing was set up.
    assert_eq!(links(&tb, "tb1"), 0);
    tb.down().unwrap();
}

#[test]
fn a_setup_whose_client_has_gone_leaves_no_link() {
    if !require_root("api_client_gone") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "o");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let path = socket(&t, "tb1");
    let tb = Testbed::up(t, &Options::default()).unwrap();
    for _ in 0..3 {
        let mut s = UnixStream::connect(&path).unwrap();
        let mut line = serde_json::to_vec(&setup_request("VM1", "VM2", 1_000_000)).unwrap();
        line.push(b'\n');
        s.write_all(&line).unwrap();
        drop(s);
    }
    // Each setup was either never carried out or torn down again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = node_stats(&tb, "tb1");
        let quiet = links(&tb, "tb1") == 0 && links(&tb, "tb4") == 0;
        if st.api_abandoned == 3 && quiet {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "abandoned {}, links tb1 {} tb4 {}",
            st.api_abandoned,
            links(&tb, "tb1"),
            links(&tb, "tb4")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A client that stays gets its link as usual.
    let mut c = tb.client("tb1").unwrap();
    assert!(matches!(
        c.call(&setup_request("VM1", "VM2", 1_000_000)).unwrap(),
        Reply::LinkUp { .. }
    ));
    tb.down().unwrap();
}

/// paper-4node with `n` more virtual node pairs, V1..Vn on tb1 and W1..Wn
/// on tb4: Vi -> Wi are `n` links, each on its own virtual interfaces (an
/// interface carries one link).
fn star(n: usize) -> impl Fn(String) -> String {
    move |mut s: String| {
        for i in 1..=n {
            s.push_str(&format!(
                "\n[[vnode]]\nname = \"W{i}\"\nvnet = \"vnet1\"\nhost = \"tb4\"\nid = {}\naddress = \"10.10.1.{i}/16\"\n",
                10 + i
            ));
            s.push_str(&format!(
                "\n[[vnode]]\nname = \"V{i}\"\nvnet = \"vnet1\"\nhost = \"tb1\"\nid = {}\naddress = \"10.10.2.{i}/16\"\n",
                100 + i
            ));
        }
        s
    }
}

#[test]
fn sixty_four_api_clients_at_once_set_up_and_tear_down_links() {
    if !require_root("sixty_four_clients") {
        return;
    }
    const N: usize = 64;
    let t = unique_topology_with("paper-4node.toml", "c", star(N));
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let path = socket(&t, "tb1");
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let start = std::sync::Barrier::new(N);
    let t0 = Instant::now();
    let results: Vec<Result<Duration, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=N)
            .map(|i| {
                let (path, start) = (&path, &start);
                s.spawn(move || -> Result<Duration, String> {
                    let mut c = vlsp::node::api::Client::connect(path, Duration::from_secs(120))
                        .map_err(|e| e.to_string())?;
                    start.wait();
                    let t = Instant::now();
                    let req = setup_request(&format!("V{i}"), &format!("W{i}"), 1_000_000);
                    let id = match c.call(&req).map_err(|e| e.to_string())? {
                        Reply::LinkUp { vlink } => vlink.vlink_id,
                        r => return Err(format!("setup V{i} -> W{i}: {r:?}")),
                    };
                    match c
                        .call(&Request::Teardown { vlink_id: id })
                        .map_err(|e| e.to_string())?
                    {
                        Reply::LinkDown { .. } => Ok(t.elapsed()),
                        r => Err(format!("teardown of {id} (V{i} -> W{i}): {r:?}")),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = t0.elapsed();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {N} failed: {failed:?}",
        failed.len()
    );
    let mut each: Vec<Duration> = results.into_iter().map(Result::unwrap).collect();
    each.sort();
    eprintln!(
        "{N} clients at once: all set up and tore down in {:.0} ms; per client median {:.0} ms, max {:.0} ms",
        total.as_secs_f64() * 1e3,
        each[N / 2].as_secs_f64() * 1e3,
        each[N - 1].as_secs_f64() * 1e3
    );
    assert_eq!(links(&tb, "tb1"), 0);
    tb.down().unwrap();
}

/// A UDP socket on a second address of tb3's side of the tb3-tb4 link, so
/// that what it sends to tb4 comes from another peer than tb3's signaling
/// (172.3.4.3).
fn second_peer(name: &str) -> std::net::UdpSocket {
    let ns_name = vlsp::kernel::netns::ns_name(name, "tb3");
    let dev = ns_output(&ns_name, "ip -o -4 addr show")
        .lines()
        .find(|l| l.contains("172.3.4.3/"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .expect("tb3's interface towards tb4");
    ip_in(&ns_name, &format!("addr add 172.3.4.99/24 dev {dev}"));
    udp_socket_in(name, "tb3", Ipv4Addr::new(172, 3, 4, 99))
}

/// A GIST-looking datagram (magic, version 1, right length, type Data)
/// whose objects are garbage: each costs the node a decode.
fn gist_lookalike() -> Vec<u8> {
    let mut pdu = vec![0x4e, 0x04, 0xbd, 0xa5, 1, 1, 0, 64, 0, 1, 3, 0x80];
    pdu.extend((0..256).map(|i| i as u8));
    pdu
}

/// A burst sent faster than tb4 handles it leaves a backlog in its intake
/// beyond one batch; the node works all of it off with nothing more
/// arriving (no datagram, API call or timer to wake it): every datagram
/// is accounted for as malformed, none left waiting.
#[test]
fn a_backlog_is_worked_off_with_nothing_more_arriving() {
    if !require_root("backlog") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "bl");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let sock = second_peer(&name);
    let pdu = gist_lookalike();
    let tb4 = SocketAddrV4::new(Ipv4Addr::new(172, 3, 4, 4), 270);
    let before = node_stats(&tb, "tb4");
    // 1500 of 268 bytes fit tb4's 4 MiB receive buffer: the kernel drops
    // none, so all of them reach the node.
    const SENT: u64 = 1500;
    for _ in 0..SENT {
        sock.send_to(&pdu, tb4).unwrap();
    }
    let accounted = |st: &vlsp::node::api::Stats| {
        (st.malformed + st.junk + st.shed_overload)
            - (before.malformed + before.junk + before.shed_overload)
    };
    eventually(Duration::from_secs(5), || {
        accounted(&node_stats(&tb, "tb4")) >= SENT
    });
    let st = node_stats(&tb, "tb4");
    assert_eq!(
        accounted(&st),
        SENT,
        "tb4 left datagrams waiting: malformed {}, junk {}, shed {}",
        st.malformed - before.malformed,
        st.junk - before.junk,
        st.shed_overload - before.shed_overload
    );
    tb.down().unwrap();
}

#[test]
fn a_peer_flooding_gist_lookalikes_does_not_starve_another_peer() {
    if !require_root("fair_shedding") {
        return;
    }
    let t = unique_topology("paper-4node.toml", "f");
    let name = t.name.clone();
    let _guard = Down(name.clone());
    let tb = Testbed::up(t, &Options::default()).unwrap();
    let sock = second_peer(&name);
    let pdu = gist_lookalike();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let tb4 = SocketAddrV4::new(Ipv4Addr::new(172, 3, 4, 4), 270);
    let (sent, setup) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if sock.send_to(&pdu, tb4).is_ok() {
                    n += 1;
                }
            }
            n
        });
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let r = tb
            .client("tb1")
            .unwrap()
            .call(&setup_request("VM1", "VM2", 1_000_000));
        let took = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (flood.join().unwrap(), (r, took))
    });
    let (r, took) = setup;
    let st = node_stats(&tb, "tb4");
    eprintln!(
        "flood of {sent} GIST-looking datagrams at tb4: setup in {:.0} ms; tb4 junk {}, shed {}, malformed {}",
        took.as_secs_f64() * 1e3,
        st.junk,
        st.shed_overload,
        st.malformed
    );
    assert!(
        matches!(r, Ok(Reply::LinkUp { .. })),
        "setup during the flood: {r:?}"
    );
    assert!(st.malformed > 0, "the flood never reached the decoder");
    tb.down().unwrap();
}
