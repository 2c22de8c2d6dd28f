//! The probe: the load generator, the cold-start burst, every drill's
//! verdict and the rules those verdicts share, plus the small JSON and
//! metrics look-ups the drill scripts need. The scripts only start and stop
//! processes and call these subcommands.
//!
//! ```sh
//! atv-bench load --url http://127.0.0.1:8080/astrada-sdk-token --rate 200 --duration-secs 30
//! atv-bench cold-start --url … --addr 127.0.0.1:8080 -n 10000
//! atv-bench verdict fault --name upstream-slow --expect expire --probe probe.json …
//! atv-bench rule down-valid-plan --down-secs 60      # token lifetime and fault start
//! atv-bench astra stampede --name astra-stampede --fake http://127.0.0.1:7071/ --targets URL1,URL2,URL3 --users 10000
//! atv-bench get http://127.0.0.1:7070/_control /requests
//! atv-bench metric http://127.0.0.1:9090/metrics atv_token_exchanges_total 'set="sdk",outcome="ok"'
//! ```

mod astra;
mod cold_start;
mod load;
mod lookup;
mod machine;
mod rules;
mod secrets;
mod verdict;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Fixed-rate load that accounts for every request; JSON on stdout.
    Load(load::Args),
    /// N concurrent first requests against a just-started service; JSON on stdout.
    ColdStart(cold_start::Args),
    /// Judges a drill: prints its one `PASS name: …` or `FAIL name: …` line
    /// and exits 1 on FAIL.
    Verdict {
        #[command(subcommand)]
        drill: verdict::Drill,
    },
    /// Per-user Astra drills across replicas: seeding, stampede, coherence.
    Astra {
        #[command(subcommand)]
        drill: astra::Astra,
    },
    /// The cache's timing rules, as numbers for the drill scripts.
    Rule {
        #[command(subcommand)]
        rule: rules::Rule,
    },
    /// One value of a JSON document (URL, file, or `-` for stdin) by JSON pointer.
    Get(lookup::GetArgs),
    /// One Prometheus sample from a metrics URL (0 when absent).
    Metric(lookup::MetricArgs),
    /// A JSON object plus fields: `key=string` or `key:=json`.
    Merge(lookup::MergeArgs),
    /// A free loopback TCP port.
    FreePort,
    /// The machine a benchmark ran on, as JSON.
    Machine(machine::Args),
    /// Creates a Secrets Manager secret with both credential sets, or adds a version.
    PutSecret(secrets::Args),
}

/// Runs one probe subcommand; a drill's FAIL exits 1 after its line.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Load(args) => load::run(args).await,
        Command::ColdStart(args) => cold_start::run(args).await,
        Command::Verdict { drill } => {
            if !drill.judge().await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Astra { drill } => {
            if !drill.run().await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rule { rule } => rule.print(),
        Command::Get(args) => lookup::get(args).await,
        Command::Metric(args) => lookup::metric(args).await,
        Command::Merge(args) => lookup::merge(args),
        Command::FreePort => {
            println!("{}", free_port()?);
            Ok(())
        }
        Command::Machine(args) => machine::run(args),
        Command::PutSecret(args) => secrets::run(args).await,
    }
}

/// A port that binds now, below Linux's ephemeral range (32768-60999): a
/// port from that range can be taken by any outgoing connection between
/// this pick and the server's bind, and a drill's many clients make that
/// happen ("Address already in use").
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between 20000 and 32000")
}
