//! A server-sent events parser following WHATWG HTML's "event stream interpretation": bytes go
//! in as they arrive, whole events come out. Lines end at CRLF, LF or CR and are decoded only
//! once complete, so a character split across chunks arrives whole. No IO in here.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `message` when the event has none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream so far (kept across events, as a browser does).
    pub id: String,
}

/// The parser's state between chunks. `retry:` is read and ignored: nothing here reconnects.
#[derive(Debug, Default)]
pub struct Parser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last line ended with CR: an LF first in the next bytes is the rest of a CRLF.
    after_cr: bool,
    /// A line was decoded already, so a byte order mark is no longer stripped.
    started: bool,
    event: String,
    data: String,
    id: String,
}

impl Parser {
    /// Reads `bytes`; returns the events that a blank line among them completed. A last event
    /// the stream never ends with a blank line is never returned.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = vec![];
        let mut rest = bytes;
        while let Some((&first, after_first)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = after_first;
                continue;
            }
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(rest);
                break;
            };
            self.line.extend_from_slice(&rest[..end]);
            self.after_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.line);
            events.extend(self.take_line(&line));
        }
        events
    }

    fn take_line(&mut self, bytes: &[u8]) -> Option<Event> {
        let decoded = String::from_utf8_lossy(bytes);
        let mut line: &str = &decoded;
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        let (field, value) = match line.split_once(':') {
            Some(("", _)) => return None,
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id = value.to_owned(),
            _ => {}
        }
        None
    }

    /// A blank line: the event gathered so far, if it has any data.
    fn dispatch(&mut self) -> Option<Event> {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return None;
        }
        data.pop();
        Some(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    /// Feeds `chunks` one after the other and gathers every event.
    fn parse(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::default();
        chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
    }

    #[test]
    fn a_character_split_between_chunks_arrives_whole_at_every_split_point() {
        let stream = "data: {\"t\":\"héllo → 😀\"}\n\n".as_bytes();
        let expected = vec![event("message", "{\"t\":\"héllo → 😀\"}", "")];
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(parse(&[a, b]), expected, "split at byte {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse(&bytes), expected, "one byte at a time");
    }

    #[test]
    fn lines_end_at_crlf_lf_or_cr() {
        let expected = vec![event("message", "a\nb", ""), event("message", "c", "")];
        for stream in [
            "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
            "data: a\ndata: b\n\ndata: c\n\n",
            "data: a\rdata: b\r\rdata: c\r\r",
            "data: a\rdata: b\n\r\ndata: c\r\r\n",
        ] {
            assert_eq!(parse(&[stream.as_bytes()]), expected, "{stream:?}");
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let events = parse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, vec![event("message", "a\nb", "")]);
    }

    #[test]
    fn data_lines_join_with_newlines_and_lose_one_leading_space() {
        let events = parse(&[b"data: a\ndata:b\ndata:  c\ndata\ndata: d:e\n\n"]);
        assert_eq!(events, vec![event("message", "a\nb\n c\n\nd:e", "")]);
        let empty = parse(&[b"data\n\n"]);
        assert_eq!(empty, vec![event("message", "", "")], "an empty data field");
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let events = parse(&[b":keep-alive\n\n: note\ndata: x\n:mid\nretry: 10\nnope: 1\n\n"]);
        assert_eq!(events, vec![event("message", "x", "")]);
    }

    #[test]
    fn event_names_last_per_event_and_ids_last_until_changed() {
        let stream = b"event: step\nid: 7\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\nid: a\0b\nevent: x\n\ndata: 4\n\n";
        assert_eq!(
            parse(&[stream]),
            vec![
                event("step", "1", "7"),
                event("message", "2", "7"),
                event("message", "3", ""),
                event("message", "4", ""),
            ],
            "an id with NUL is ignored; an event without data is not dispatched and resets its name"
        );
    }

    #[test]
    fn a_byte_order_mark_is_dropped_at_the_start_only() {
        let events = parse(&[b"\xEF\xBB", b"\xBFdata: a\n\xEF\xBB\xBFdata: b\n\n"]);
        assert_eq!(events, vec![event("message", "a", "")]);
    }

    #[test]
    fn an_event_the_stream_never_ends_with_a_blank_line_is_not_dispatched() {
        assert_eq!(
            parse(&[b"data: a\n\ndata: b\n"]),
            vec![event("message", "a", "")]
        );
        assert_eq!(
            parse(&[b"data: a\n\ndata: b"]),
            vec![event("message", "a", "")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let events = parse(&[b"data: \xFFok\n\n"]);
        assert_eq!(events, vec![event("message", "\u{fffd}ok", "")]);
    }
}
