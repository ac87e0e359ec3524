//! The deployment files agree with what the bot reads (no Docker engine here, so they are
//! parsed, not run): compose's ports, endpoints, service names and environment variables, the
//! collector's pipeline, the Dockerfile's user, health check and commands.

mod common;

use std::collections::BTreeSet;

use common::repo_path;
use serde_yaml::Value;

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo_path(rel)).expect(rel)).expect(rel)
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(*k)
            .unwrap_or_else(|| panic!("missing {}", path.join(".")))
    })
}

fn env_of(service: &Value) -> Vec<(String, String)> {
    s(service, &["environment"])
        .as_mapping()
        .expect("environment map")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_string(),
                v.as_str().expect("string value").to_string(),
            )
        })
        .collect()
}

/// `host:port` of an `http://host:port` or `ws://host:port` URL.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).expect("scheme");
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').expect("port");
    (host.to_string(), port.parse().expect("port number"))
}

#[test]
fn compose_and_collector_agree_with_the_bot() {
    let compose = yaml("deploy/docker-compose.yml");
    let collector = yaml("otel-collector.yaml");
    let services = s(&compose, &["services"]);
    for name in [
        "bot",
        "watchdog",
        "otel-collector",
        "jaeger",
        "mock-exchange",
        "bot-staging",
        "watchdog-staging",
    ] {
        assert!(services.get(name).is_some(), "service {name}");
    }
    // Each watchdog watches its bot: the same database file on the same volume, the same
    // config, the same venue (and MM_* variables the bot reads).
    for (watchdog, bot) in [("watchdog", "bot"), ("watchdog-staging", "bot-staging")] {
        let args: Vec<&str> = s(&services[watchdog], &["command"])
            .as_sequence()
            .expect("cmd")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(args[0], "watchdog");
        let arg = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1))
                .copied()
                .unwrap_or_else(|| panic!("{watchdog} {flag}"))
        };
        let bot_env = env_of(&services[bot]);
        let bot_db = bot_env
            .iter()
            .find(|(k, _)| k == "MM_DB_PATH")
            .map(|(_, v)| v.as_str())
            .expect("bot db");
        assert_eq!(arg("--db"), bot_db, "{watchdog} watches {bot}'s database");
        let bot_args: Vec<&str> = s(&services[bot], &["command"])
            .as_sequence()
            .expect("cmd")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let bot_config = bot_args
            .iter()
            .position(|a| *a == "--config")
            .and_then(|i| bot_args.get(i + 1))
            .copied()
            .expect("bot config");
        assert_eq!(arg("--config"), bot_config, "{watchdog}");
        assert_eq!(
            s(&services[watchdog], &["volumes"]),
            s(&services[bot], &["volumes"]),
            "{watchdog}"
        );
        for (k, v) in env_of(&services[watchdog])
            .iter()
            .filter(|(k, _)| k.starts_with("MM_DELTADEFI") || k == "MM_BINANCE_URL")
        {
            assert!(
                bot_env.iter().any(|(bk, bv)| bk == k && bv == v),
                "{watchdog} {k}={v} differs from {bot}"
            );
        }
    }
    // The bot exports to the collector's gRPC receiver, by service name and port.
    let grpc_port = host_port(&format!(
        "http://{}",
        s(
            &collector,
            &["receivers", "otlp", "protocols", "grpc", "endpoint"]
        )
        .as_str()
        .expect("endpoint")
    ))
    .1;
    for bot in ["bot", "bot-staging"] {
        let env = env_of(&services[bot]);
        let endpoint = env
            .iter()
            .find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|(_, v)| v.clone())
            .expect("endpoint");
        assert_eq!(
            host_port(&endpoint),
            ("otel-collector".to_string(), grpc_port),
            "{bot}"
        );
        assert!(
            env.iter()
                .any(|(k, v)| k == "OTEL_EXPORTER_OTLP_PROTOCOL" && v == "grpc")
        );
        // Every MM_* variable is one the bot reads.
        let known: BTreeSet<&str> = deltadefi_mm::config::ENV_OVERRIDES
            .iter()
            .map(|(k, _)| *k)
            .collect();
        for (k, _) in env.iter().filter(|(k, _)| k.starts_with("MM_")) {
            assert!(
                known.contains(k.as_str()),
                "{bot} sets {k}, which the bot does not read"
            );
        }
        // SQLite on a named volume, at the path the bot is told.
        let db = env
            .iter()
            .find(|(k, _)| k == "MM_DB_PATH")
            .map(|(_, v)| v.clone())
            .expect("db path");
        let vols = s(&services[bot], &["volumes"])
            .as_sequence()
            .expect("volumes");
        let mounted = vols.iter().filter_map(Value::as_str).any(|v| {
            let (name, dir) = v.split_once(':').expect("volume");
            compose["volumes"].get(name).is_some() && db.starts_with(dir)
        });
        assert!(mounted, "{bot}: {db} is not on a named volume");
        assert_eq!(s(&services[bot], &["env_file"])[0].as_str(), Some(".env"));
    }
    // The staging bot reaches the mock exchange by name, on the port it listens on.
    let mock_cmd: Vec<&str> = s(&services["mock-exchange"], &["command"])
        .as_sequence()
        .expect("cmd")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let listen = mock_cmd
        .iter()
        .skip_while(|a| **a != "--listen")
        .nth(1)
        .expect("--listen");
    let mock_port: u16 = listen
        .rsplit_once(':')
        .expect("port")
        .1
        .parse()
        .expect("number");
    let staging = env_of(&services["bot-staging"]);
    for var in [
        "MM_DELTADEFI_REST_URL",
        "MM_DELTADEFI_WS_URL",
        "MM_BINANCE_URL",
    ] {
        let url = staging
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{var}"));
        assert_eq!(
            host_port(&url),
            ("mock-exchange".to_string(), mock_port),
            "{var}"
        );
    }
    for svc in ["mock-exchange", "bot-staging"] {
        let profiles = s(&services[svc], &["profiles"])
            .as_sequence()
            .expect("profiles");
        assert_eq!(
            profiles[0].as_str(),
            Some("staging"),
            "{svc} belongs to the staging profile"
        );
    }
    // The collector: OTLP in, memory limiter then batch, out to Jaeger's OTLP port and debug.
    let pipeline = s(&collector, &["service", "pipelines", "traces"]);
    let names = |k: &str| -> Vec<String> {
        pipeline[k]
            .as_sequence()
            .expect(k)
            .iter()
            .map(|v| v.as_str().expect("name").to_string())
            .collect()
    };
    assert_eq!(names("receivers"), ["otlp"]);
    assert_eq!(names("processors"), ["memory_limiter", "batch"]);
    assert_eq!(names("exporters"), ["otlp/jaeger", "debug"]);
    // Metrics have a pipeline too, or the collector refuses them.
    let metrics = s(&collector, &["service", "pipelines", "metrics"]);
    assert_eq!(metrics["receivers"][0].as_str(), Some("otlp"));
    let jaeger = s(&collector, &["exporters", "otlp/jaeger", "endpoint"])
        .as_str()
        .expect("jaeger endpoint");
    assert_eq!(
        host_port(&format!("http://{jaeger}")),
        ("jaeger".to_string(), 4317)
    );
    let jaeger_env = &services["jaeger"]["environment"];
    assert_eq!(jaeger_env["COLLECTOR_OTLP_ENABLED"].as_str(), Some("true"));
    let ports: Vec<&str> = s(&services["jaeger"], &["ports"])
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"16686:16686"), "Jaeger UI published");
    let collector_ports: Vec<&str> = s(&services["otel-collector"], &["ports"])
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(collector_ports.contains(&format!("{grpc_port}:{grpc_port}").as_str()));
    let mount = s(&services["otel-collector"], &["volumes"])[0]
        .as_str()
        .expect("mount");
    assert!(mount.starts_with("../otel-collector.yaml:"), "{mount}");
    // .env.example names the secrets the bot reads.
    let example = std::fs::read_to_string(repo_path("deploy/.env.example")).expect(".env.example");
    for var in [
        deltadefi_mm::app::ENV_API_KEY,
        deltadefi_mm::app::ENV_PASSCODE,
    ] {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} missing from .env.example"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_real_health_check() {
    let text = std::fs::read_to_string(repo_path("deploy/Dockerfile")).expect("Dockerfile");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert_ne!(user.trim(), "root");
    assert!(text.contains("HEALTHCHECK"));
    // The commands it runs exist in this binary.
    for sub in [["health", "--help"], ["run", "--help"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deltadefi-mm"))
            .args(sub)
            .output()
            .expect("binary");
        assert!(out.status.success(), "{sub:?}");
    }
    assert!(text.contains(r#""deltadefi-mm", "health", "--db", "/app/data/mm.db""#));
    // The image runs the whole-program optimised build: built with the `perf` profile, which
    // Cargo.toml defines with fat LTO, and that binary is the one copied.
    assert!(text.contains("cargo build --profile perf --locked --bin deltadefi-mm"));
    assert!(text.contains("COPY --from=build /src/target/perf/deltadefi-mm /usr/local/bin/"));
    let manifest = std::fs::read_to_string(repo_path("Cargo.toml")).expect("Cargo.toml");
    let perf: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.perf]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .map(str::trim)
        .collect();
    for setting in ["lto = \"fat\"", "codegen-units = 1"] {
        assert!(
            perf.contains(&setting),
            "[profile.perf] lacks {setting}: {perf:?}"
        );
    }
    // The configs it ships are valid.
    for cfg in [
        "config/staging.yaml",
        "config/staging-wire.yaml",
        "config/production.yaml",
    ] {
        let c = deltadefi_mm::config::parse(&std::fs::read_to_string(repo_path(cfg)).expect(cfg))
            .expect(cfg);
        assert_eq!(c.validate(), vec![], "{cfg}");
    }
}
