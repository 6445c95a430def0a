//! End to end through a real browser: the server listens on loopback and
//! headless Chromium drives the page as a person would: pick a database,
//! browse its schema, type a question, ask, read the result table, page
//! through it, edit and re-run the SQL, use an alternative, see a refusal in
//! plain words, and find the question in the history. A screenshot is kept
//! under `<target>/test-artifacts/serve/`.
//!
//! Needs Debian's `chromium` (or `$CHROMIUM`); without it the test is
//! skipped with a message, except under `CI`, where it fails.

#[path = "support/cdp.rs"]
mod cdp;
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use text2sql_serve::Server;

const WAIT: Duration = Duration::from_secs(30);

fn artifacts() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("test-artifacts")
        .join("serve")
}

/// Runs the server on its own runtime thread until the returned sender is
/// dropped or fired.
fn start_server(fixture: &Fixture) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config = fixture.config();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = Server::bind(
                config,
                Arc::new(SandboxRunner),
                Arc::new(FixedGenerator::new()),
            )
            .await
            .unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop_tx)
}

#[test]
fn a_person_asks_a_question_in_the_page_and_sees_the_result() {
    let Some(chromium) = cdp::find_chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed (apt-get install chromium) and CI is set");
        }
        eprintln!("skipping: no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let fixture = Fixture::new();
    let before = snapshot(fixture.dir.path());
    let (addr, stop) = start_server(&fixture);
    let mut browser = cdp::Browser::launch(&chromium).unwrap();
    let mut page = browser
        .open(&format!("http://{addr}/"), 1440, 1000)
        .unwrap();
    let shot = artifacts().join("page.png");
    let result = drive(&mut page);
    // Kept whether the flow passed or not: on failure it shows where it stopped.
    page.screenshot(&shot, 1440).unwrap();
    eprintln!("screenshot: {}", shot.display());
    result.unwrap();
    drop(browser);
    let _ = stop.send(());
    assert_eq!(before, snapshot(fixture.dir.path()));
}

fn text(page: &mut cdp::Page, selector: &str) -> String {
    page.eval(&format!(
        "(() => {{ const e = document.querySelector({selector:?}); return e ? e.innerText : null; }})()"
    ))
    .unwrap()
    .as_str()
    .unwrap_or_else(|| panic!("no element matches {selector}"))
    .to_string()
}

fn result_cells(page: &mut cdp::Page) -> Vec<Vec<String>> {
    let value = page
        .eval(
            "[...document.querySelectorAll('#result-table tbody tr')].map(tr => \
             [...tr.querySelectorAll('td:not(.rownum)')].map(td => td.innerText))",
        )
        .unwrap();
    serde_json::from_value(value).unwrap()
}

/// Replaces the text of the field `field` with `text` as a person would
/// (click, select it all, type), presses `button` and waits until `until`.
fn enter(
    page: &mut cdp::Page,
    field: &str,
    text: &str,
    button: &str,
    until: &str,
) -> Result<(), String> {
    page.click(field)?;
    page.eval(&format!("document.getElementById({field:?}).select()"))?;
    page.type_text(text)?;
    page.click(button)?;
    page.wait_for(until, WAIT)
}

fn drive(page: &mut cdp::Page) -> Result<(), String> {
    // The database list loads, and the schema of the chosen one shows.
    page.wait_for(
        "document.querySelectorAll('#database option').length === 2",
        WAIT,
    )?;
    page.eval(
        "(() => { const s = document.getElementById('database'); s.value = 'concert'; \
         s.dispatchEvent(new Event('change')); })()",
    )?;
    page.wait_for(
        "!!document.querySelector('#schema details[data-table=\"concert\"]')",
        WAIT,
    )?;
    let schema = text(page, "#schema");
    assert!(schema.contains("singer_id"), "{schema}");
    assert!(schema.contains("PK"), "{schema}");
    assert!(schema.contains("→ singer.singer_id"), "{schema}");
    assert!(schema.contains("'Joe Sharp'"), "{schema}");

    // Type a question and ask.
    let some_rows = "document.querySelectorAll('#result-table tbody tr').length > 0";
    enter(page, "question", Q_FRANCE, "ask", some_rows)?;
    assert_eq!(
        result_cells(page),
        [
            ["John Nizinik"],
            ["Justin Brown"],
            ["Rose White"],
            ["Tribal King"]
        ]
    );
    // One page only: no pager shown.
    let pager = page.eval("getComputedStyle(document.getElementById('pager')).display")?;
    assert_eq!(pager, json!("none"));
    let sql = page.eval("document.getElementById('sql').value")?;
    assert_eq!(
        sql,
        json!("SELECT name FROM singer WHERE country = 'France' ORDER BY name")
    );
    // Highlighted: keywords and the string literal get their own spans.
    let keywords = page.eval("document.querySelectorAll('#sql-highlight .k').length")?;
    assert_eq!(keywords, json!(5));
    assert_eq!(text(page, "#sql-highlight .s"), "'France'");
    // The alternatives say which run; the failing one says why in plain words.
    let alternatives = text(page, "#alternatives");
    assert!(alternatives.contains("✗ fails"), "{alternatives}");
    assert!(
        alternatives.contains("The model's SQL refers to a column that does not exist: nme."),
        "{alternatives}"
    );
    assert_eq!(text(page, "#alternatives-summary"), "2 of 3 run");
    assert!(text(page, "#timings").contains("generated in"));
    assert!(text(page, "#history").contains(Q_FRANCE));

    // A question held to a query shape says which.
    let held = "document.getElementById('alternatives-summary').innerText.includes('held to')";
    enter(page, "question", Q_COUNT, "ask", held)?;
    assert_eq!(
        text(page, "#alternatives-summary"),
        "2 of 3 run · held to the shape select count ( * ) from _"
    );

    // A long result is paginated: 50 rows (the cap) in pages of 25.
    let first_page = "document.getElementById('page-info').innerText === 'page 1 of 2'";
    enter(page, "question", Q_CONCERTS, "ask", first_page)?;
    assert!(text(page, "#result-summary").contains("only the first 50 rows"));
    page.click("next")?;
    page.wait_for(
        "document.getElementById('page-info').innerText === 'page 2 of 2'",
        WAIT,
    )?;
    assert_eq!(result_cells(page)[0], ["26", "Concert 26", "2006"]);

    // Edit the SQL and run it again.
    let edited = "SELECT name, age FROM singer WHERE age > 40 ORDER BY age";
    let three_rows = "document.querySelectorAll('#result-table tbody tr').length === 3";
    enter(page, "sql", edited, "run", three_rows)?;
    assert_eq!(
        result_cells(page),
        [
            ["Rose White", "41"],
            ["John Nizinik", "43"],
            ["Joe Sharp", "52"]
        ]
    );
    assert!(text(page, "#sql-origin").contains("edited"));

    // SQL that writes is refused, in plain words, and nothing runs.
    let error_shown = "!document.getElementById('error').hidden";
    enter(page, "sql", "DELETE FROM singer", "run", error_shown)?;
    assert!(text(page, "#error").contains("only one read-only SELECT statement may run"));

    // History: asking again from the list.
    page.eval(
        "[...document.querySelectorAll('#history button')].find(b => b.innerText.includes('France')).click()",
    )?;
    page.wait_for(
        "document.querySelectorAll('#result-table tbody tr').length === 4 && document.body.dataset.state === 'ready'",
        WAIT,
    )?;
    assert!(text(page, "#error").is_empty());
    Ok(())
}

text2sql_sql::sql_worker_entry!();
