//! A scenario's text as it is parsed: the file with `${VAR}` expanded ([`crate::env_expand`])
//! and `--set` overrides spliced in ([`crate::overrides`]). Every edit is remembered, so that a
//! position in the parsed text is told where the user can find it: a line and column of the
//! file they wrote, or the `--set` argument that wrote it.

/// The text to parse and how it came from the file.
#[derive(Debug, Clone)]
pub struct Source {
    /// The text to parse.
    pub text: String,
    /// The file's text as written.
    original: String,
    /// The edits, one batch per step; each batch's offsets are in characters of the text
    /// before it, sorted, not overlapping.
    steps: Vec<Vec<Edit>>,
}

/// One replacement of `replaced` characters at `from` by `inserted` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub from: usize,
    pub replaced: usize,
    pub inserted: usize,
    pub origin: Origin,
}

/// What made an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The value of `${name}` (or its default).
    Variable(String),
    /// `$$`, written as one `$`.
    Escape,
    /// A `--set` argument, as given.
    Set(String),
}

/// Where a position of the parsed text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A line and column (1-based, in characters) of the file; `note` says when the position
    /// is inside a variable's value (the position is then that of its `${`).
    File {
        line: u64,
        column: u64,
        note: Option<String>,
    },
    /// Text written by this `--set` argument.
    Set(String),
}

impl Source {
    pub fn new(text: String) -> Source {
        Source {
            original: text.clone(),
            text,
            steps: Vec::new(),
        }
    }

    /// Applies a batch of edits (`from` and `replaced` in characters of the current text,
    /// sorted by `from`, not overlapping), each with its new text.
    pub fn edit(&mut self, edits: Vec<(usize, usize, String, Origin)>) {
        if edits.is_empty() {
            return;
        }
        let bytes = char_to_byte(&self.text);
        let mut out = String::with_capacity(self.text.len());
        let mut copied = 0usize;
        let mut batch = Vec::with_capacity(edits.len());
        for (from, replaced, new, origin) in edits {
            debug_assert!(from >= copied, "edits sorted and not overlapping");
            out.push_str(&self.text[bytes[copied]..bytes[from]]);
            out.push_str(&new);
            copied = from + replaced;
            batch.push(Edit {
                from,
                replaced,
                inserted: new.chars().count(),
                origin,
            });
        }
        out.push_str(&self.text[bytes[copied]..]);
        self.text = out;
        self.steps.push(batch);
    }

    /// Where line `line`, column `column` (1-based, in characters) of [`Source::text`] came from.
    pub fn place(&self, line: u64, column: u64) -> Place {
        let mut offset = offset_of(&self.text, line, column);
        let mut note = None;
        for batch in self.steps.iter().rev() {
            match back_through(batch, offset) {
                Ok(before) => offset = before,
                Err((_, Origin::Set(arg))) => return Place::Set(arg.clone()),
                Err((at, Origin::Variable(name))) => {
                    // The first variable met going back is the innermost: name it.
                    note.get_or_insert_with(|| format!("in the value of ${{{name}}}"));
                    offset = at;
                }
                Err((at, Origin::Escape)) => offset = at,
            }
        }
        let (line, column) = line_column(&self.original, offset);
        Place::File { line, column, note }
    }
}

/// The offset before a batch of edits of `offset` after it, or the edit whose new text holds
/// it (with where that edit began).
fn back_through(batch: &[Edit], offset: usize) -> Result<usize, (usize, &Origin)> {
    // `shift`: characters added so far by the edits before `offset`.
    let mut shift: isize = 0;
    for e in batch {
        let start = (e.from as isize + shift) as usize;
        if offset < start {
            break;
        }
        if offset < start + e.inserted {
            return Err((e.from, &e.origin));
        }
        shift += e.inserted as isize - e.replaced as isize;
    }
    Ok((offset as isize - shift).max(0) as usize)
}

/// Byte offsets of every character of `s`, and of its end.
fn char_to_byte(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .collect()
}

/// The character offset of a 1-based line and column (clamped to the text).
fn offset_of(text: &str, line: u64, column: u64) -> usize {
    let mut offset = 0usize;
    for (i, l) in text.split('\n').enumerate() {
        let len = l.chars().count();
        if i as u64 + 1 == line.max(1) {
            return offset + (column.max(1) as usize - 1).min(len);
        }
        offset += len + 1;
    }
    text.chars().count()
}

/// The 1-based line and column of a character offset.
pub fn line_column(text: &str, offset: usize) -> (u64, u64) {
    let (mut line, mut column) = (1u64, 1u64);
    for c in text.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The character offset where `line` (1-based) begins, for tests and callers that count lines.
#[cfg(test)]
fn line_start(text: &str, line: u64) -> usize {
    offset_of(text, line, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_go_back_to_the_file() {
        let mut s = Source::new("a: ${X}\nb: 2\n".into());
        // `${X}` (4 chars at offset 3) becomes `long value`.
        s.edit(vec![(
            3,
            4,
            "long value".into(),
            Origin::Variable("X".into()),
        )]);
        assert_eq!(s.text, "a: long value\nb: 2\n");
        // Line 2 is unchanged.
        assert_eq!(
            s.place(2, 4),
            Place::File {
                line: 2,
                column: 4,
                note: None
            }
        );
        // Inside the value: the `${`.
        assert_eq!(
            s.place(1, 8),
            Place::File {
                line: 1,
                column: 4,
                note: Some("in the value of ${X}".into())
            }
        );
        // A `--set` inserting a line before line 2.
        let at = line_start(&s.text, 2);
        s.edit(vec![(at, 0, "c: 3\n".into(), Origin::Set("c=3".into()))]);
        assert_eq!(s.text, "a: long value\nc: 3\nb: 2\n");
        assert_eq!(s.place(2, 4), Place::Set("c=3".into()));
        assert_eq!(
            s.place(3, 1),
            Place::File {
                line: 2,
                column: 1,
                note: None
            }
        );
    }

    #[test]
    fn several_edits_in_one_batch() {
        let mut s = Source::new("x: $$1 ${A} ${B}\n".into());
        s.edit(vec![
            (3, 2, "$".into(), Origin::Escape),
            (7, 4, "".into(), Origin::Variable("A".into())),
            (12, 4, "bbbbbbbb".into(), Origin::Variable("B".into())),
        ]);
        assert_eq!(s.text, "x: $1  bbbbbbbb\n");
        // The second `b` is in ${B}, which began at column 13.
        assert_eq!(
            s.place(1, 9),
            Place::File {
                line: 1,
                column: 13,
                note: Some("in the value of ${B}".into())
            }
        );
        // The `1` after the escape: column 6 of the file.
        assert_eq!(
            s.place(1, 5),
            Place::File {
                line: 1,
                column: 6,
                note: None
            }
        );
    }

    #[test]
    fn characters_not_bytes() {
        let mut s = Source::new("é: ${X}\n".into());
        s.edit(vec![(3, 4, "ü".into(), Origin::Variable("X".into()))]);
        assert_eq!(s.text, "é: ü\n");
    }
}
