//! The `herald` command line as a user meets it: client commands run as processes against a real
//! node, piped into readers that stop early, given options that would do nothing, and checked
//! against what the README says they take.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Output, Stdio};
use std::time::Duration;

use herald_tests::{herald_bin, Cluster, Options};

/// How long any one client command may take here: they answer in well under a second.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Runs `herald ARGS` with `stdout`, capturing standard error (and standard output if piped).
async fn herald(env: &[(String, String)], args: &[&str], stdout: Stdio) -> Output {
    let child = tokio::process::Command::new(herald_bin())
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting herald");
    tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("herald {args:?} did not end within {COMMAND_LIMIT:?}"))
        .expect("waiting for herald")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The write end of a pipe whose read end is already closed: the first write fails with EPIPE,
/// as when `head -1` has read its line and gone.
fn closed_pipe() -> Stdio {
    let mut fds: [libc::c_int; 2] = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`; each is owned exactly once below.
    // O_CLOEXEC keeps the read end out of processes other tests start meanwhile.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// A one-node cluster with its leader elected: enough for a client command to get answers.
async fn one_node() -> (Cluster, String) {
    let cluster = Cluster::start(Options {
        nodes: 1,
        ..Options::default()
    });
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = cluster.node(1).grpc.clone();
    (cluster, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_end_quietly_when_their_reader_has_gone() {
    let (cluster, endpoint) = one_node().await;
    let env = cluster.client_env();
    let sent = herald(
        &env,
        &[
            "send",
            "--endpoint",
            &endpoint,
            "--to",
            "13800138000",
            "--text",
            "closed pipe",
        ],
        Stdio::piped(),
    )
    .await;
    assert!(sent.status.success(), "{sent:?}");
    let id = stdout_of(&sent).trim().to_string();

    let e = endpoint.as_str();
    let commands: Vec<Vec<&str>> = vec![
        vec!["status", "--endpoint", e, &id],
        vec!["status", "--endpoint", e, "--json", &id],
        vec!["trace", "--endpoint", e, &id],
        vec!["cluster", "status", "--endpoint", e],
        vec!["cluster", "status", "--endpoint", e, "--json"],
        vec!["policy", "show", "--endpoint", e],
        vec![
            "send",
            "--endpoint",
            e,
            "--to",
            "13800138000",
            "--text",
            "into a closed pipe",
        ],
        vec![
            "bench",
            "--endpoint",
            e,
            "--messages",
            "5",
            "--concurrency",
            "1",
            "--no-wait",
        ],
    ];
    for args in commands {
        let output = herald(&env, &args, closed_pipe()).await;
        let stderr = stderr_of(&output);
        assert!(
            !stderr.contains("panicked"),
            "herald {args:?} panicked on a closed pipe: {stderr}"
        );
        assert_eq!(
            output.status.code(),
            Some(141),
            "herald {args:?} on a closed pipe ends with status 141, as the README says: {stderr}"
        );
        // Quietly: nothing on stderr but what the command logs anyway (bench's progress log).
        if args[0] != "bench" {
            assert_eq!(stderr, "", "herald {args:?} on a closed pipe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_says_when_its_idempotency_key_matched_an_earlier_message() {
    let (cluster, endpoint) = one_node().await;
    let env = cluster.client_env();
    let send = |key: &'static str, text: &'static str| {
        let endpoint = endpoint.clone();
        let env = env.clone();
        async move {
            let output = herald(
                &env,
                &[
                    "send",
                    "--endpoint",
                    &endpoint,
                    "--to",
                    "13800138000",
                    "--text",
                    text,
                    "--idempotency-key",
                    key,
                ],
                Stdio::piped(),
            )
            .await;
            assert!(output.status.success(), "{output:?}");
            (stdout_of(&output), stderr_of(&output))
        }
    };

    let (first, first_note) = send("cli-key-1", "the first").await;
    let id = first.trim().to_string();
    assert!(!id.is_empty() && first == format!("{id}\n"), "{first:?}");
    assert!(!first_note.contains("idempotency key"), "{first_note}");

    // The same key again: the same id alone on stdout (scripts read it), and a note saying so.
    let (again, note) = send("cli-key-1", "the first").await;
    assert_eq!(again, first, "the id alone, the same one");
    assert!(
        note.contains(&format!(
            "idempotency key \"cli-key-1\" matched message {id} submitted earlier; nothing new was created"
        )),
        "{note}"
    );

    // Another key: a new message, no note.
    let (other, other_note) = send("cli-key-2", "the second").await;
    assert_ne!(other.trim(), id);
    assert!(!other_note.contains("idempotency key"), "{other_note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_refuses_options_that_would_do_nothing() {
    // Refused before connecting: nothing listens at this address.
    let cases: [(&[&str], &str); 6] = [
        (&["--concurrency", "0"], "--concurrency 0: "),
        (&["--messages", "0"], "--messages 0: "),
        (&["--batch", "0"], "--batch 0: "),
        (&["--batch", "1001"], "--batch 1001: "),
        (&["--duration-secs", "0"], "--duration-secs 0: "),
        (&["--encoding", "latin1"], "--encoding \"latin1\": "),
    ];
    for (options, refusal) in cases {
        let mut args = vec!["bench", "--endpoint", "127.0.0.1:9"];
        args.extend_from_slice(options);
        let output = herald(&[], &args, Stdio::piped()).await;
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {refusal}")),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("cannot reach"),
            "{args:?} was checked before connecting: {stderr}"
        );
        assert!(stdout_of(&output).is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fails_when_submits_fail_and_sums_the_failures_up() {
    let (cluster, endpoint) = one_node().await;
    let env = cluster.client_env();
    // Texts over the node's limit: the node refuses every one of them.
    for batch in ["1", "10"] {
        let output = herald(
            &env,
            &[
                "bench",
                "--endpoint",
                &endpoint,
                "--messages",
                "40",
                "--concurrency",
                "4",
                "--batch",
                batch,
                "--text-len",
                "1001",
                "--no-wait",
            ],
            Stdio::piped(),
        )
        .await;
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "batch {batch}: {stderr}");
        assert!(
            stdout_of(&output).contains("0 accepted, 40 failed"),
            "batch {batch}: {}",
            stdout_of(&output)
        );
        // One line for the one kind of failure, with its count and an example; not one per call.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("InvalidArgument"))
            .collect();
        assert_eq!(lines.len(), 1, "batch {batch}: {stderr}");
        assert!(
            lines[0].contains("40 ") && lines[0].contains("text"),
            "batch {batch}: {stderr}"
        );
        assert!(
            stderr.contains("error: 40 of 40 messages were not accepted"),
            "batch {batch}: {stderr}"
        );
    }
}

/// The long options of a `--help` text: what clap prints at the start of an option's line.
fn options_in_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            // "      --name <VALUE>" or "  -h, --help"
            let line = line.trim_start();
            let line = line.strip_prefix("--").or_else(|| {
                let (short, long) = line.split_once(", --")?;
                (short.len() == 2 && short.starts_with('-')).then_some(long)
            })?;
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .filter(|name| name != "help" && name != "version")
        .collect()
}

/// The long options a piece of README text names (`--name`).
fn options_in_text(text: &str) -> BTreeSet<String> {
    text.split("--")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty() && name != "help")
        .collect()
}

/// The README's "Commands" table: for every command path (`send`, `sim cmpp`, `herald-chaos`),
/// the options its rows name. A row's code spans are read in order: one starting with `herald`
/// names the command(s) (`<a|b>` several subcommands, `<name>` all of them) and the options after
/// it; one starting with `--` adds options to the command named last.
fn readme_table(readme: &str, herald: &clap::Command) -> BTreeMap<Vec<String>, BTreeSet<String>> {
    let section = readme
        .split("\n## Commands")
        .nth(1)
        .expect("the README has a Commands section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let mut current: Vec<Vec<String>> = Vec::new();
        for (i, span) in row.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let span = span.replace("\\|", "|");
            let mut words = span.split_whitespace();
            match words.next() {
                Some("herald-chaos") => current = vec![vec!["herald-chaos".to_string()]],
                Some("herald") => {
                    current = vec![Vec::new()];
                    for word in words {
                        let mut next = Vec::new();
                        for path in &current {
                            let mut command = herald;
                            for name in path {
                                command = command.find_subcommand(name).expect("a known path");
                            }
                            let names: Vec<String> = if let Some(inner) =
                                word.strip_prefix('<').and_then(|w| w.strip_suffix('>'))
                            {
                                if inner.contains('|') {
                                    inner.split('|').map(str::to_string).collect()
                                } else {
                                    command
                                        .get_subcommands()
                                        .map(|c| c.get_name().to_string())
                                        .collect()
                                }
                            } else if command.find_subcommand(word).is_some() {
                                vec![word.to_string()]
                            } else {
                                Vec::new()
                            };
                            for name in names {
                                let mut path = path.clone();
                                path.push(name);
                                next.push(path);
                            }
                        }
                        if next.is_empty() {
                            break;
                        }
                        current = next;
                    }
                    for path in &current {
                        table.entry(path.clone()).or_default();
                    }
                }
                _ => {}
            }
            if span.starts_with("herald") || span.starts_with("--") {
                for path in &current {
                    table
                        .entry(path.clone())
                        .or_default()
                        .extend(options_in_text(&span));
                }
            }
        }
    }
    table
}

/// Every command of the tree with the long options it takes (clap's own help and version left
/// out), by path.
fn commands_of(
    command: &clap::Command,
    path: Vec<String>,
    out: &mut BTreeMap<Vec<String>, (bool, BTreeSet<String>)>,
) {
    let options: BTreeSet<String> = command
        .get_arguments()
        .filter(|a| {
            !matches!(
                a.get_action(),
                clap::ArgAction::Help
                    | clap::ArgAction::HelpShort
                    | clap::ArgAction::HelpLong
                    | clap::ArgAction::Version
            )
        })
        .filter_map(|a| a.get_long())
        .map(str::to_string)
        .collect();
    let leaf = !command.has_subcommands();
    out.insert(path.clone(), (leaf, options));
    for sub in command.get_subcommands() {
        let mut path = path.clone();
        path.push(sub.get_name().to_string());
        commands_of(sub, path, out);
    }
}

#[test]
fn the_readme_command_table_names_exactly_the_options_the_commands_take() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("reading README.md");
    let herald = herald_node::cli::command();
    let table = readme_table(&readme, &herald);

    let mut commands = BTreeMap::new();
    commands_of(&herald, Vec::new(), &mut commands);
    let chaos_help = std::process::Command::new(env!("CARGO_BIN_EXE_herald-chaos"))
        .arg("--help")
        .output()
        .expect("herald-chaos --help");
    assert!(chaos_help.status.success(), "{chaos_help:?}");
    let chaos_options = options_in_help(&String::from_utf8_lossy(&chaos_help.stdout));
    assert!(chaos_options.contains("seed"), "{chaos_options:?}");
    commands.insert(vec!["herald-chaos".to_string()], (true, chaos_options));

    let mut problems = Vec::new();
    for (path, (leaf, options)) in &commands {
        let documented = table.get(path);
        if documented.is_none() && (*leaf || !options.is_empty()) && !path.is_empty() {
            problems.push(format!("`{}` has no row in the table", path.join(" ")));
            continue;
        }
        let documented = documented.cloned().unwrap_or_default();
        for missing in options.difference(&documented) {
            problems.push(format!(
                "`{}` takes --{missing}, which the table does not name",
                path.join(" ")
            ));
        }
    }
    for (path, options) in &table {
        match commands.get(path) {
            None => problems.push(format!(
                "the table names `{}`, no such command",
                path.join(" ")
            )),
            Some((_, takes)) => {
                for unknown in options.difference(takes) {
                    problems.push(format!(
                        "the table gives `{}` --{unknown}, which it does not take",
                        path.join(" ")
                    ));
                }
            }
        }
    }
    if !readme.contains("`HERALD_LOG`") {
        problems.push("the README does not say what HERALD_LOG does".to_string());
    }
    assert!(
        problems.is_empty(),
        "README.md's Commands table and the CLI disagree:\n  {}",
        problems.join("\n  ")
    );
}
