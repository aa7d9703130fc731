//! The simulator runs of CNGP and SMGP links. Both simulators share one core
//! (`sim::telecom`) and both clients the same session rules, so one test body serves both; a
//! [`Gateway`] holds what differs. The hand-driven gateway tests stay in each protocol's file,
//! since they build that protocol's PDUs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use herald_protocols::link::{LinkClient, Protocol};
use herald_protocols::sim::telecom::{SimConfig, SimFaults};
use herald_protocols::telecom::MsgId10;
use herald_protocols::text::split_text_140;
use herald_protocols::{ClientEvent, LinkSettings, OutboundSegment};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{
    check_fifty_submit_records, expect_reports, local_listener, read_records,
    refused_logins_keep_the_link_down, shutdown_and_refuse, six_submits_take_three_rounds,
    submit_all_accepted, wait_connected, wait_event, within, Client, SimTask,
};

pub const SECRET: &str = "s3cret";

/// One of the two protocols, as its tests see it.
pub struct Gateway<C> {
    pub protocol: Protocol,
    /// The link's name in its settings.
    pub name: &'static str,
    /// The SP's account at the simulator.
    pub account: &'static str,
    pub src_id: &'static str,
    /// The simulator's gateway code: it leads every MsgID, in BCD.
    pub gateway_id: u32,
    /// Where [`Gateway::fifty_segments`] sends its single parts and its Chinese messages.
    pub dests: [&'static str; 2],
    /// The protocol's client, started directly rather than through [`LinkClient`].
    pub start: fn(LinkSettings) -> (C, mpsc::Receiver<ClientEvent>),
    /// The protocol's simulator on a bound listener.
    pub run: fn(
        TcpListener,
        SimConfig,
        SimFaults,
        BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, std::io::Result<()>>,
}

impl<C: Client> Gateway<C> {
    async fn start_sim(&self, record: Option<&Path>, faults: SimFaults) -> (SimTask, SocketAddr) {
        let (listener, addr) = local_listener().await;
        let config = SimConfig {
            listen: addr.to_string(),
            accounts: vec![(self.account.into(), SECRET.into())],
            report_delay: Duration::from_millis(50),
            delivered_ratio: 0.7,
            record: record.map(Path::to_path_buf),
            gateway_id: self.gateway_id,
        };
        let run = self.run;
        let sim = SimTask::spawn(|shutdown| run(listener, config, faults, shutdown));
        (sim, addr)
    }

    pub fn settings(&self, addr: SocketAddr, secret: &str, window: usize) -> LinkSettings {
        super::link_settings(self.name, addr, self.account, secret, self.src_id, window)
    }

    pub fn fifty_segments(&self) -> Vec<OutboundSegment> {
        super::fifty_segments(
            split_text_140,
            |i| format!("verification code {i:04}"),
            self.dests,
        )
    }

    /// Fifty submits through [`LinkClient`] (which must pick this protocol's client, as
    /// `is_own` says) are accepted under BCD MsgIDs and every report arrives; the simulator's
    /// record shows the texts, with the three parts numbered as `pk_number_says`.
    pub async fn fifty_submits_are_accepted_and_all_reports_arrive(
        &self,
        is_own: impl Fn(&LinkClient) -> bool,
        pk_number_says: &str,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("sim.jsonl");
        let (sim, addr) = self.start_sim(Some(&record), SimFaults::default()).await;
        let (client, mut events) =
            LinkClient::start(self.protocol, self.settings(addr, SECRET, 16));
        assert!(is_own(&client));
        wait_connected(&mut events).await;
        assert!(client.is_connected());

        // BCD: the gateway code leads every id.
        let gateway_code = format!("{:06}", self.gateway_id);
        let carrier_ids = submit_all_accepted(&client, &self.fifty_segments(), |carrier_id| {
            let id: MsgId10 = carrier_id.parse().expect("20 hex digits");
            assert!(carrier_id.starts_with(&gateway_code), "{carrier_id}");
            assert_eq!(id.to_string(), carrier_id);
        })
        .await;
        assert_eq!(carrier_ids.len(), 50);
        expect_reports(&mut events, &carrier_ids).await;

        let records = read_records(&record);
        let chinese = check_fifty_submit_records(
            &records,
            &carrier_ids,
            self.account,
            "verification code 0007",
        );
        let numbers: HashSet<_> = chinese.iter().map(|s| s["pk_number"].clone()).collect();
        assert_eq!(numbers.len(), 3, "{pk_number_says}");
        let reports = records.iter().filter(|r| r["kind"] == "report").count();
        assert_eq!(reports, 50);

        shutdown_and_refuse(&client, self.fifty_segments().remove(0)).await;
        sim.stop().await;
    }

    /// Each Submit_Resp takes 200 ms: with a window of 2, six submits need three rounds.
    pub async fn window_bounds_outstanding_submits(&self) {
        let faults = SimFaults {
            submit_resp_delay: Duration::from_millis(200),
            ..SimFaults::default()
        };
        let (sim, addr) = self.start_sim(None, faults).await;
        let (client, mut events) = (self.start)(self.settings(addr, SECRET, 2));
        six_submits_take_three_rounds(&client, &mut events, self.fifty_segments()).await;
        sim.stop().await;
    }

    /// Three logins in a row are refused with Status 21; the link stays down.
    pub async fn wrong_secret_fails_login_and_keeps_retrying(&self) {
        let (sim, addr) = self.start_sim(None, SimFaults::default()).await;
        let mut s = self.settings(addr, "not-the-secret", 16);
        s.response_timeout = Duration::from_millis(300);
        let (client, mut events) = (self.start)(s);
        let seg = self.fifty_segments().remove(0);
        refused_logins_keep_the_link_down(
            &client,
            &mut events,
            "a refused login",
            "Status 21",
            3,
            seg,
        )
        .await;
        sim.stop().await;
    }

    /// An option the protocol does not know keeps the link from connecting at all.
    pub async fn unknown_option_keeps_the_link_down_and_says_why(&self) {
        let (listener, addr) = local_listener().await;
        let mut s = self.settings(addr, SECRET, 16);
        s.options.insert("bind".into(), "transceiver".into());
        let (client, mut events) = (self.start)(s);
        wait_event(&mut events, "the refusal", |e| {
            matches!(e, ClientEvent::Disconnected { reason } if reason.contains("unknown option \"bind\""))
        })
        .await;
        // It never connected.
        assert!(timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err());
        within("client shutdown", client.shutdown()).await;
    }
}
