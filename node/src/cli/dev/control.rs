//! The control protocol between `herald dev start-node` / `start-sim` and the running
//! supervisor, over the Unix socket in the dev folder: one request line, one reply line. A
//! socket file in the folder (rather than a port) means only whoever may write the folder may
//! ask, and a second cluster cannot answer for the first.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::folder::SOCKET_FILE;

/// How long a client waits for the supervisor's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request or reply line read: both are a few words; a peer that sends more is
/// not a `herald dev` and must not make the reader allocate without bound.
pub const MAX_LINE: u64 = 1024;

#[derive(Debug, PartialEq)]
pub enum Request {
    /// Start the stopped child `name` (`node2`, `sim-cmpp`) again.
    Start { name: String },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("unknown request {0:?}: expected \"start NAME\"")]
    Unknown(String),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, RequestError> {
        match line.trim().split_once(' ') {
            Some(("start", name)) if !name.trim().is_empty() => Ok(Request::Start {
                name: name.trim().to_string(),
            }),
            _ => Err(RequestError::Unknown(line.trim().to_string())),
        }
    }

    fn to_line(&self) -> String {
        match self {
            Request::Start { name } => format!("start {name}\n"),
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Reply {
    Ok(String),
    Error(String),
}

impl Reply {
    pub fn to_line(&self) -> String {
        // One line whatever the text holds: the client reads exactly one.
        match self {
            Reply::Ok(text) => format!("ok {}\n", text.replace('\n', " ")),
            Reply::Error(text) => format!("error {}\n", text.replace('\n', " ")),
        }
    }

    fn parse(line: &str) -> Reply {
        let line = line.trim_end();
        match line.split_once(' ') {
            Some(("ok", text)) => Reply::Ok(text.to_string()),
            Some(("error", text)) => Reply::Error(text.to_string()),
            _ => Reply::Error(format!("unexpected reply {line:?}")),
        }
    }
}

/// Sends `request` to the supervisor of the cluster in `dir`; its answer, or an error saying
/// why none came.
pub async fn ask(dir: &Path, request: Request) -> anyhow::Result<String> {
    let path = dir.join(SOCKET_FILE);
    let mut stream = UnixStream::connect(&path).await.map_err(|e| {
        anyhow::anyhow!(
            "no herald dev is running on {} (cannot connect to {}: {e}); start one with \
             `herald dev --dir {}`",
            dir.display(),
            path.display(),
            dir.display()
        )
    })?;
    stream.write_all(request.to_line().as_bytes()).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_LINE));
    match tokio::time::timeout(REPLY_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => anyhow::bail!("reading the supervisor's reply: {e}"),
        Err(_) => anyhow::bail!("the supervisor did not answer within 10 s"),
    }
    match Reply::parse(&line) {
        Reply::Ok(text) => Ok(text),
        Reply::Error(text) => anyhow::bail!("{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_lines() {
        let request = Request::Start {
            name: "node2".into(),
        };
        assert_eq!(Request::parse(&request.to_line()), Ok(request));
        assert!(Request::parse("stop node2").is_err());
        assert!(Request::parse("start ").is_err());
        let reply = Reply::Error("node2 is already running\n(pid 7)".into());
        assert_eq!(
            Reply::parse(&reply.to_line()),
            Reply::Error("node2 is already running (pid 7)".into())
        );
        assert_eq!(
            Reply::parse(&Reply::Ok("started".into()).to_line()),
            Reply::Ok("started".into())
        );
    }
}
