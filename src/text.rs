//! Short excerpts of text for messages and reports, cut on character boundaries.

/// `s` up to `max_chars` characters, with `…` when it was cut.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((cut, _)) => {
            let mut e = String::with_capacity(cut + 3);
            e.push_str(&s[..cut]);
            e.push('…');
            e
        }
    }
}

/// Shortens `line` to at most `max_bytes` bytes, on a character boundary. True if it was cut.
pub fn cut_to_bytes(line: &mut String, max_bytes: usize) -> bool {
    if line.len() <= max_bytes {
        return false;
    }
    let mut cut = max_bytes;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("abc", 3), "abc");
        assert_eq!(excerpt("abcd", 3), "abc…");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }

    #[test]
    fn byte_cuts_keep_characters_whole() {
        let mut s = "aé".to_string();
        assert!(cut_to_bytes(&mut s, 2));
        assert_eq!(s, "a");
        let mut s = "ab".to_string();
        assert!(!cut_to_bytes(&mut s, 2));
    }
}
