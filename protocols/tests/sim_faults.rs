//! The shared simulator faults (`sim::faults`) in the SMPP, SGIP, SMGP and CNGP simulators, met
//! by the crate's own clients over real TCP on 127.0.0.1: each test runs one fault against all
//! four protocols and checks what the client sees (the protocol's throttling code, a timeout, a
//! lost connection and a reconnect). Every wait has a deadline.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{within, SimTask};
use futures::future::join_all;
use herald_protocols::link::{CarrierClient, LinkClient, Protocol};
use herald_protocols::sim::faults::SimFaults;
use herald_protocols::{ClientEvent, LinkSettings, OutboundSegment, SendError, SubmitOutcome};
use tokio::sync::mpsc;

const SECRET: &str = "s3cret";
const PROTOCOLS: [Protocol; 4] = [
    Protocol::Smpp,
    Protocol::Sgip,
    Protocol::Smgp,
    Protocol::Cngp,
];

/// The code each simulator throttles with.
fn throttle_code(protocol: Protocol) -> u32 {
    match protocol {
        Protocol::Smpp => 0x58,
        Protocol::Sgip => 88,
        Protocol::Smgp | Protocol::Cngp => 1,
        other => panic!("no simulator faults for {other}"),
    }
}

/// One client linked to one simulator of its protocol.
struct Rig {
    protocol: Protocol,
    client: LinkClient,
    events: mpsc::Receiver<ClientEvent>,
    sim: SimTask,
}

impl Rig {
    async fn start(protocol: Protocol, faults: SimFaults, window: usize) -> Rig {
        let (listener, addr) = common::local_listener().await;
        let account = match protocol {
            Protocol::Smgp => "SP000001",
            Protocol::Cngp => "SP00000001",
            _ => "herald",
        };
        let name = format!("{protocol}-faults");
        let mut settings = LinkSettings {
            response_timeout: Duration::from_millis(800),
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(100),
            ..common::link_settings(&name, addr, account, SECRET, "10690001", window)
        };
        let telecom = |gateway_id| herald_protocols::sim::telecom::SimConfig {
            listen: addr.to_string(),
            accounts: vec![(account.into(), SECRET.into())],
            report_delay: Duration::from_millis(50),
            delivered_ratio: 1.0,
            record: None,
            gateway_id,
        };
        let (client, events, sim) = match protocol {
            Protocol::Smpp => {
                let (client, events) = LinkClient::start(protocol, settings);
                let config =
                    herald_protocols::sim::smpp::SimConfig::new(addr.to_string(), account, SECRET);
                let sim = SimTask::spawn(|shutdown| {
                    herald_protocols::sim::smpp::run_on(listener, config, faults, shutdown)
                });
                (client, events, sim)
            }
            Protocol::Smgp => {
                let (client, events) = LinkClient::start(protocol, settings);
                let sim = SimTask::spawn(|shutdown| {
                    herald_protocols::sim::smgp::run_on(listener, telecom(10061), faults, shutdown)
                });
                (client, events, sim)
            }
            Protocol::Cngp => {
                let (client, events) = LinkClient::start(protocol, settings);
                let sim = SimTask::spawn(|shutdown| {
                    herald_protocols::sim::cngp::run_on(listener, telecom(20071), faults, shutdown)
                });
                (client, events, sim)
            }
            Protocol::Sgip => {
                use herald_protocols::sim::sgip::{run_on, SimAccount, SimConfig};
                settings.options = [("node-id", "3020012345"), ("listen", "127.0.0.1:0")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let (client, events) = LinkClient::start(protocol, settings);
                let CarrierClient::Sgip(sgip) = client.carrier() else {
                    panic!("an SGIP link");
                };
                let sp_addr: SocketAddr = sgip.listen_addr().expect("the SP listens");
                let config = SimConfig {
                    listen: String::new(),
                    accounts: vec![SimAccount {
                        login: account.into(),
                        password: SECRET.into(),
                        sp_addr: None,
                    }],
                    sp_addr: Some(sp_addr.to_string()),
                    report_delay: Duration::from_millis(50),
                    delivered_ratio: 1.0,
                    record: None,
                    node_id: 4_020_000_001,
                    idle_timeout: Duration::from_secs(60),
                };
                let sim = SimTask::spawn(|shutdown| run_on(listener, config, faults, shutdown));
                (client, events, sim)
            }
            other => panic!("no simulator faults for {other}"),
        };
        Rig {
            protocol,
            client,
            events,
            sim,
        }
    }

    fn segment(&self, n: usize) -> OutboundSegment {
        OutboundSegment {
            dest: format!("1380013{n:04}"),
            segment: self.client.split(&format!("fault test {n}")).remove(0),
            registered_delivery: false,
        }
    }

    async fn submit(&self, n: usize) -> Result<SubmitOutcome, SendError> {
        self.client.submit(self.segment(n)).await
    }

    /// Submits `count` segments at once; the outcomes in order.
    async fn burst(&self, count: usize) -> Vec<Result<SubmitOutcome, SendError>> {
        within(
            "a burst of submits",
            join_all((0..count).map(|n| self.submit(n))),
        )
        .await
    }

    /// Waits for a `Disconnected` event whose reason passes `pred`, then for `Connected`.
    async fn lost_and_reconnected(&mut self, pred: impl Fn(&str) -> bool) {
        let protocol = self.protocol;
        within("the link to drop and come back", async {
            let mut dropped = false;
            loop {
                match self.events.recv().await {
                    Some(ClientEvent::Disconnected { reason }) if pred(&reason) => dropped = true,
                    Some(ClientEvent::Connected) if dropped => return,
                    Some(_) => {}
                    None => panic!("{protocol}: events closed"),
                }
            }
        })
        .await
    }

    async fn stop(self) {
        within("client shutdown", self.client.shutdown()).await;
        self.sim.stop().await;
    }
}

fn accepted(outcome: &Result<SubmitOutcome, SendError>) -> bool {
    matches!(outcome, Ok(SubmitOutcome::Accepted { .. }))
}

fn throttled(protocol: Protocol, outcome: &Result<SubmitOutcome, SendError>) -> bool {
    matches!(outcome, Ok(SubmitOutcome::Rejected { code, retryable: true, .. })
        if *code == throttle_code(protocol))
}

#[tokio::test]
async fn a_rate_limit_throttles_the_excess_with_each_protocols_code() {
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            max_per_second: Some(5),
            ..SimFaults::default()
        };
        let rig = Rig::start(protocol, faults, 16).await;
        let started = Instant::now();
        let outcomes = rig.burst(12).await;
        let took = started.elapsed();
        let ok = outcomes.iter().filter(|o| accepted(o)).count();
        let limited = outcomes.iter().filter(|o| throttled(protocol, o)).count();
        assert_eq!(ok + limited, 12, "{protocol}: {outcomes:?}");
        if took < Duration::from_millis(900) {
            assert_eq!(ok, 5, "{protocol}: five per second: {outcomes:?}");
        } else {
            assert!(ok >= 5 && limited >= 1, "{protocol}: {outcomes:?}");
        }
        // A second later the account may send again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            accepted(&rig.submit(99).await),
            "{protocol}: not throttled after a second"
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_full_window_throttles_at_once_and_delayed_responses_take_their_time() {
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            max_window: Some(2),
            submit_resp_delay: Duration::from_millis(300),
            ..SimFaults::default()
        };
        let rig = Rig::start(protocol, faults, 8).await;
        // Connect first, so that the burst is not also racing the login.
        let started = Instant::now();
        assert!(accepted(&rig.submit(0).await), "{protocol}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{protocol}: the response was held"
        );
        let outcomes = rig.burst(6).await;
        let ok = outcomes.iter().filter(|o| accepted(o)).count();
        let limited = outcomes.iter().filter(|o| throttled(protocol, o)).count();
        assert_eq!((ok, limited), (2, 4), "{protocol}: {outcomes:?}");
        rig.stop().await;
    }
}

#[tokio::test]
async fn drop_after_closes_the_connection_and_the_client_comes_back() {
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            drop_after: Some(2),
            ..SimFaults::default()
        };
        let mut rig = Rig::start(protocol, faults, 1).await;
        assert!(accepted(&rig.submit(0).await), "{protocol}");
        assert!(accepted(&rig.submit(1).await), "{protocol}");
        let third = within("the third submit", rig.submit(2)).await;
        assert_eq!(third, Err(SendError::ConnectionLost), "{protocol}");
        rig.lost_and_reconnected(|_| true).await;
        // The count starts again on the new connection.
        assert!(accepted(&rig.submit(3).await), "{protocol}");
        rig.stop().await;
    }
}

#[tokio::test]
async fn stall_after_leaves_requests_unanswered() {
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            stall_after: Some(1),
            ..SimFaults::default()
        };
        let rig = Rig::start(protocol, faults, 1).await;
        assert!(accepted(&rig.submit(0).await), "{protocol}");
        let started = Instant::now();
        let second = within("the second submit", rig.submit(1)).await;
        assert_eq!(second, Err(SendError::Timeout), "{protocol}");
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{protocol}"
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn malformed_after_breaks_the_connection_and_the_client_comes_back() {
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            malformed_after: Some(1),
            ..SimFaults::default()
        };
        let mut rig = Rig::start(protocol, faults, 1).await;
        assert!(accepted(&rig.submit(0).await), "{protocol}");
        let second = within("the second submit", rig.submit(1)).await;
        assert_eq!(second, Err(SendError::ConnectionLost), "{protocol}");
        rig.lost_and_reconnected(|reason| reason.contains("bad frame"))
            .await;
        assert!(accepted(&rig.submit(2).await), "{protocol}");
        rig.stop().await;
    }
}

/// Every simulator injects MOs on its own (`mo_every`), a long one in concatenated parts, and
/// the client reads them whole: SGIP's gateway over its own connection to the SP, the others
/// on the client's connection.
#[tokio::test]
async fn every_simulator_injects_mos_and_a_long_one_arrives_in_parts() {
    let text = format!("Reply {}", "y".repeat(200));
    for protocol in PROTOCOLS {
        let faults = SimFaults {
            mo_every: Some(Duration::from_millis(200)),
            mo_text: Some(text.clone()),
            mo_to: Some("1069000188".into()),
            ..SimFaults::default()
        };
        let mut rig = Rig::start(protocol, faults, 4).await;
        let first = common::take_mo(&mut rig.events).await;
        let second = common::take_mo(&mut rig.events).await;
        for part in [&first, &second] {
            assert_eq!(part.src, "13800138000", "{protocol}");
            assert_eq!(part.dest, "1069000188", "{protocol}");
        }
        let (Some((a, _)), Some((b, _))) = (first.concat, second.concat) else {
            panic!("{protocol}: two parts of one message: {first:?} {second:?}");
        };
        assert_eq!(
            (a.total, a.number, b.total, b.number),
            (2, 1, 2, 2),
            "{protocol}"
        );
        assert_eq!(a.reference, b.reference, "{protocol}");
        assert_eq!(format!("{}{}", first.text, second.text), text, "{protocol}");
        rig.stop().await;
    }
}
