//! The actors' protocol stays legible: no module of `actors/src` imports, directly or through
//! others, a module that imports it (no cycle), the registry speaks only in messages, and the
//! README's protocol table and diagram are exactly what `actors/src/messages.rs` says of each
//! message, and the pure cores import no actix.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules of `actors/src` each one refers to (`crate::name`), outside its
/// tests and comments.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = common::repo_path("actors/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let top = |p: &Path| -> String {
        let rel = p.strip_prefix(&root).expect("under src");
        let first = rel.components().next().expect("a component");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| top(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top(f);
        let text = std::fs::read_to_string(f).expect("read source");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != from && modules.contains(&name) {
                    graph.entry(from.clone()).or_default().insert(name);
                }
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_the_actors_crate_imports_itself_through_others() {
    let graph = module_graph();
    assert!(graph.len() > 20, "the modules were found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
    // The registry refers to messages, not to the actors that handle them (and sends to
    // other threads through `after_turn`, which knows no actor either).
    let registry = &graph["registry"];
    let allowed: BTreeSet<String> = ["messages", "halt_gate", "venue_book", "after_turn"]
        .map(String::from)
        .into();
    assert!(
        registry.is_subset(&allowed),
        "the registry imports {registry:?}"
    );
    // And the messages import no actor.
    let actors = [
        "account_feed",
        "binance_feed",
        "gateway",
        "mock_exchange",
        "order_manager",
        "outbox_worker",
        "quote_engine",
        "rate_limiter",
        "risk_guard",
        "deltadefi",
        "store",
    ];
    let messages = &graph["messages"];
    assert!(
        actors.iter().all(|a| !messages.contains(*a)),
        "messages imports {messages:?}"
    );
}

/// The actors' pure cores: decisions live here, the actor shells around them only handle
/// messages, log, record and send.
const PURE_CORES: &[&str] = &[
    "binance_feed/codec.rs",
    "binance_feed/guard.rs",
    "binance_feed/ingest.rs",
    "binance_feed/replay.rs",
    "binance_feed/source.rs",
    "order_manager/book.rs",
    "order_manager/flatten.rs",
    "order_manager/reconcile.rs",
    "order_manager/state.rs",
    "outbox_worker/queue.rs",
    "quote_engine/pricing.rs",
    "rate_limiter/budget.rs",
    "risk_guard/book.rs",
    "risk_guard/rules.rs",
];

#[test]
fn no_pure_core_imports_actix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/src");
    for core in PURE_CORES {
        let text = std::fs::read_to_string(root.join(core)).expect("a core's source");
        let code: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        assert!(code.len() > 20, "{core} was read");
        let uses: Vec<&&str> = code.iter().filter(|l| l.contains("actix")).collect();
        assert!(uses.is_empty(), "{core} uses actix: {uses:?}");
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(
        find_cycle(&graph),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}

/// The protocol table from `messages.rs`: one row per message with its
/// `/// **Sender → receiver.** The receiver ...` line.
fn protocol_table() -> String {
    let text = std::fs::read_to_string(common::repo_path("actors/src/messages.rs"))
        .expect("read messages.rs");
    let mut rows = vec![
        "| message | from → to | the receiver |".to_string(),
        "|---|---|---|".to_string(),
    ];
    let mut pending: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("/// **")
            && let Some((who, promise)) = rest.split_once(".** The receiver ")
        {
            pending = Some((who.to_string(), promise.trim_end_matches('.').to_string()));
        } else if let Some((who, promise)) = pending.as_ref()
            && let Some(name) = line
                .strip_prefix("pub struct ")
                .or_else(|| line.strip_prefix("pub enum "))
                .or_else(|| line.strip_prefix("pub use crate::venue::"))
        {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            rows.push(format!("| `{name}` | {who} | {promise} |"));
            pending = None;
        }
    }
    rows.join("\n")
}

/// The README's text between `<!-- name:begin -->` and `<!-- name:end -->`.
fn readme_between(name: &str) -> String {
    let readme = std::fs::read_to_string(common::repo_path("README.md")).expect("README");
    readme
        .split_once(&format!("<!-- {name}:begin -->\n"))
        .and_then(|(_, rest)| rest.split_once(&format!("\n<!-- {name}:end -->")))
        .map(|(t, _)| t.to_string())
        .unwrap_or_else(|| panic!("the README has the {name} markers"))
}

#[test]
fn the_readme_protocol_table_is_the_messages_module() {
    let table = protocol_table();
    assert!(table.lines().count() > 25, "messages found:\n{table}");
    let between = readme_between("protocol");
    assert_eq!(
        between, table,
        "the README's protocol table differs from actors/src/messages.rs; it should read:\n{table}"
    );
}

#[test]
fn the_readme_actors_table_names_only_messages_that_exist() {
    let readme = std::fs::read_to_string(common::repo_path("README.md")).expect("README");
    let table = protocol_table();
    let start = readme
        .find("| actor | owns | receives | sends |")
        .expect("the actors table");
    let actors_table: String = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    // Every message the actors table names in backticks is one of the protocol's.
    let mut named = 0;
    for part in actors_table.split('`').skip(1).step_by(2) {
        let is_message = part.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && part.chars().all(|c| c.is_ascii_alphanumeric());
        if is_message && part != "SendGate" {
            named += 1;
            assert!(
                table.contains(&format!("| `{part}` |")),
                "the README's actors table names `{part}`, which actors/src/messages.rs does not define"
            );
        }
    }
    assert!(named >= 5, "the actors table names {named} messages");
}

/// What sends and receives messages: the actors, the two DeltaDeFi transports and the store.
const NODES: &[&str] = &[
    "BinanceFeed",
    "QuoteEngine",
    "OrderManager",
    "RiskGuard",
    "RateLimiter",
    "OutboxWorker",
    "DeltaDeFiGateway",
    "AccountFeed",
    "MockExchange",
    "DeltaDeFiRest",
    "DeltaDeFiAccountStream",
    "Store",
];

/// The nodes `text` names as whole words, in the order it names them.
fn nodes_named(text: &str) -> Vec<&'static str> {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut found: Vec<(usize, &'static str)> = NODES
        .iter()
        .filter_map(|n| {
            text.match_indices(n)
                .find(|(i, _)| {
                    !word(text[..*i].chars().next_back())
                        && !word(text[i + n.len()..].chars().next())
                })
                .map(|(i, _)| (i, *n))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// Every (sender, receiver, message) the `**Sender → Receiver.**` lines of `messages.rs` name.
fn edges() -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    for row in protocol_table().lines().skip(2) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let (name, who) = (
            cells[0].trim_start_matches("| ").trim_matches('`'),
            cells[1],
        );
        let (from, to) = who
            .split_once('→')
            .unwrap_or_else(|| panic!("`{name}`: no arrow in \"{who}\""));
        let (senders, receivers) = (nodes_named(from), nodes_named(to));
        assert!(
            !senders.is_empty() && !receivers.is_empty(),
            "`{name}`: \"{who}\" must name its sender and receiver among {NODES:?}"
        );
        for s in &senders {
            for r in &receivers {
                out.push((*s, *r, name.to_string()));
            }
        }
    }
    out
}

/// The README's diagram: a Mermaid flowchart with one arrow per sender and receiver, labelled
/// with the messages between them in `messages.rs` order.
fn protocol_diagram() -> String {
    let mut arrows: Vec<((&str, &str), Vec<String>)> = Vec::new();
    for (from, to, message) in edges() {
        match arrows.iter_mut().find(|(k, _)| *k == (from, to)) {
            Some((_, names)) => names.push(message),
            None => arrows.push(((from, to), vec![message])),
        }
    }
    let mut lines = vec!["```mermaid".to_string(), "flowchart LR".to_string()];
    for ((from, to), names) in arrows {
        lines.push(format!("    {from} -->|{}| {to}", names.join(", ")));
    }
    lines.push("```".to_string());
    lines.join("\n")
}

#[test]
fn the_readme_diagram_is_the_messages_module() {
    let diagram = protocol_diagram();
    assert!(diagram.lines().count() > 15, "arrows found:\n{diagram}");
    let between = readme_between("diagram");
    assert_eq!(
        between, diagram,
        "the README's diagram differs from actors/src/messages.rs; it should read:\n{diagram}"
    );
}

#[test]
fn the_diagram_reads_senders_and_receivers_as_whole_words() {
    assert_eq!(
        nodes_named("AccountFeed → OrderManager and RiskGuard, after the fill is stored"),
        ["AccountFeed", "OrderManager", "RiskGuard"]
    );
    assert_eq!(
        nodes_named("DeltaDeFiRestless, MockExchange"),
        ["MockExchange"],
        "a longer word is not a node"
    );
    let arrows = edges();
    assert!(arrows.contains(&("BinanceFeed", "MockExchange", "ReferenceTicks".to_string())));
    assert!(arrows.contains(&(
        "RiskGuard",
        "OrderManager",
        "TradingStateChanged".to_string()
    )));
    assert!(arrows.contains(&("DeltaDeFiRest", "RateLimiter", "AcquireSend".to_string())));
}
