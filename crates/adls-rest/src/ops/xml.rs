//! A minimal reader for the service's small XML documents (error bodies,
//! listings, block lists): reports each text node and each closing element
//! with the path of element names that leads to it.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::Error;

/// What [`walk`] reports.
pub(crate) enum Node<'a> {
    /// The text of the element at `path` (entities resolved); `encoded` when the
    /// element has `Encoded="true"` (percent-encoded names in listings).
    Text {
        path: &'a [String],
        text: &'a str,
        encoded: bool,
    },
    /// The element at `path` closes.
    Close { path: &'a [String] },
}

/// Walks `body`, calling `on` for every text node and closing element.
pub(crate) fn walk(body: &[u8], mut on: impl FnMut(Node<'_>)) -> Result<(), Error> {
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut encoded = false;
    let mut text = String::new();
    let mut buf = Vec::new();
    let bad = |what: String| Error::protocol(format!("invalid XML in answer: {what}"));
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(format!("at byte {}: {e}", reader.buffer_position())))?;
        match event {
            Event::Start(e) => {
                text.clear();
                encoded = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == b"Encoded" && a.value.as_ref() == b"true");
                path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Event::Empty(e) => {
                text.clear();
                path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                on(Node::Close { path: &path });
                path.pop();
            }
            Event::End(_) => {
                if !text.trim().is_empty() {
                    on(Node::Text {
                        path: &path,
                        text: &text,
                        encoded,
                    });
                }
                text.clear();
                on(Node::Close { path: &path });
                path.pop();
                encoded = false;
            }
            Event::Text(t) => {
                text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(e.to_string()))?;
                    text.push(match name.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(bad(format!("unknown entity `&{other};`"))),
                    });
                }
            }
            Event::Eof => {
                if !path.is_empty() {
                    return Err(bad(format!("document ends inside <{}>", path.join("/"))));
                }
                return Ok(());
            }
            _ => {}
        }
        buf.clear();
    }
}

/// `Code` and `Message` of an `<Error>` body.
pub(crate) fn error_code_and_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let (mut code, mut message) = (None, None);
    let _ = walk(body, |node| {
        if let Node::Text { path, text, .. } = node {
            match path {
                [e, c] if e == "Error" && c == "Code" => code = Some(text.to_string()),
                [e, m] if e == "Error" && m == "Message" => message = Some(text.trim().to_string()),
                _ => {}
            }
        }
    });
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobAlreadyExists</Code><Message>The specified blob &amp; &#x41;lready exists.
RequestId:abc
Time:2024-01-01T00:00:00.000Z</Message></Error>"#;
        let (c, m) = error_code_and_message(body);
        assert_eq!(c.as_deref(), Some("BlobAlreadyExists"));
        assert!(m
            .expect("message")
            .starts_with("The specified blob & Already exists."));
    }

    #[test]
    fn malformed_is_protocol_error() {
        assert!(walk(b"<a><b>x</a>", |_| {}).is_err());
        assert!(walk(b"<a><b>x</b>", |_| {}).is_err());
    }
}
