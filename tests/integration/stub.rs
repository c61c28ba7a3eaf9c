//! A scriptable HTTP/1.1 server for the protocol tests: every request goes to a handler that
//! decides the answer (status, body, how slowly it is sent), so a test can play a hostile or
//! broken server. One thread per connection; `Connection: close` on every answer.

#![allow(dead_code)] // Headers and bodies are for the tests that check what bsi sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value, by case-insensitive name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// A status and a body, sent at once.
    Now(u16, Vec<u8>),
    /// Nothing, ever: the connection stays open and silent.
    Silent,
    /// A status and a body, sent after a pause.
    After(Duration, u16, Vec<u8>),
}

impl Reply {
    /// A 200 with this JSON.
    pub(crate) fn json(value: &serde_json::Value) -> Self {
        Reply::Now(200, serde_json::to_vec(value).unwrap())
    }
}

/// Starts a server on 127.0.0.1; returns its base URL.
pub(crate) fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = Arc::clone(&handler);
            std::thread::spawn(move || {
                if let Some(request) = read_request(&stream) {
                    answer(stream, &handler(&request));
                }
            });
        }
    });
    url
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut words = first.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn answer(mut stream: TcpStream, reply: &Reply) {
    let (status, body) = match reply {
        Reply::Silent => {
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        Reply::Now(status, body) => (*status, body),
        Reply::After(pause, status, body) => {
            std::thread::sleep(*pause);
            (*status, body)
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}
