//! A minimal Chrome DevTools Protocol client for driving headless Chromium
//! from tests: launch, open a page, evaluate JavaScript, wait for a
//! condition, type text, take a screenshot. Written against the protocol
//! directly (JSON over one WebSocket) because the browser-automation crates
//! pull in an async stack and downloads of their own, and a test needs only
//! these few calls.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// The Chromium to use: `$CHROMIUM` if set, else `chromium` or
/// `chromium-browser` on the PATH (Debian's package installs `chromium`).
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium process, killed when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub fn launch(chromium: &Path) -> Result<Self, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                // Tests may run as root in a container, where the sandbox
                // cannot start; the page is our own, served on loopback.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1440,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (url_tx, url_rx) = mpsc::channel();
        // Reads the DevTools address, then keeps draining stderr so that
        // Chromium never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(url) = line.strip_prefix("DevTools listening on ") {
                        let _ = url_tx.send(Ok(url.trim().to_string()));
                        sent = true;
                    } else {
                        log.push(line);
                    }
                }
            }
            if !sent {
                let _ = url_tx.send(Err(log.join("\n")));
            }
        });
        let url = match url_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(log)) => {
                let _ = child.kill();
                return Err(format!("Chromium exited before listening:\n{log}"));
            }
            Err(_) => {
                let _ = child.kill();
                return Err("Chromium did not open its DevTools port within 60 s".into());
            }
        };
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| format!("unexpected DevTools address {url}"))?;
        let stream = TcpStream::connect(host).map_err(|e| format!("{host}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let (socket, _) =
            tungstenite::client(url.as_str(), stream).map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        })
    }

    /// Sends one command and returns its result, skipping events.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .map_err(|e| format!("{method}: {e}"))?;
        loop {
            let reply = self.socket.read().map_err(|e| format!("{method}: {e}"))?;
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if value["id"] != json!(id) {
                continue;
            }
            if let Some(error) = value.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(value["result"].clone());
        }
    }

    /// Opens `url` in a new tab of `width` × `height` CSS pixels.
    pub fn open(&mut self, url: &str, width: u32, height: u32) -> Result<Page<'_>, String> {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or("no targetId")?
            .to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_string();
        let mut page = Page {
            browser: self,
            session,
        };
        page.call("Page.enable", json!({}))?;
        page.call("Runtime.enable", json!({}))?;
        page.resize(width, height)?;
        page.call("Page.navigate", json!({"url": url}))?;
        page.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )?;
        Ok(page)
    }
}

/// One tab.
pub struct Page<'b> {
    browser: &'b mut Browser,
    session: String,
}

impl Page<'_> {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.browser.call(Some(&session), method, params)
    }

    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), String> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .map(drop)
    }

    /// Evaluates `expression` (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("`{expression}` threw: {exception}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `condition` until it is true. The limit only keeps a broken
    /// page from hanging the test; it is not a speed requirement.
    pub fn wait_for(&mut self, condition: &str, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self.eval(condition)? == json!(true) {
                return Ok(());
            }
            if started.elapsed() > limit {
                let text = self.eval("document.body ? document.body.innerText : ''")?;
                return Err(format!(
                    "`{condition}` still false after {limit:?}; the page reads:\n{}",
                    text.as_str().unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` into the focused element as keyboard input would.
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        self.call("Input.insertText", json!({"text": text}))
            .map(drop)
    }

    /// Clicks the centre of the element with this id, as a mouse would.
    pub fn click(&mut self, id: &str) -> Result<(), String> {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.getElementById({id:?}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ))?;
        let (x, y) = (
            rect[0].as_f64().unwrap_or(0.0),
            rect[1].as_f64().unwrap_or(0.0),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// A PNG of the whole page, resized to fit its content first.
    pub fn screenshot(&mut self, path: &Path, width: u32) -> Result<(), String> {
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")?
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 4000) as u32;
        self.resize(width, height)?;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}
