//! Cross-checks the encoder against PHP itself: thousands of random frames (awkward strings,
//! integer-like keys, empty objects, big integers, floats of every size) go through PHP's
//! `json_decode(…, true)`, `unset($a['sign'])`, `ksort`, `json_encode(…, JSON_UNESCAPED_UNICODE)`
//! and `md5`, and through this crate; both must write the same bytes. A second batch checks the
//! driver's path: the frame as serde_json writes it, signed from serde_json's map.
//!
//! PHP comes from `tests/php/ensure-php.sh`, which installs Debian's php-cli when missing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FRAMES: usize = 3000;

const PHP: &str = r#"
while (($line = fgets(STDIN)) !== false) {
    $a = json_decode(substr($line, 0, -1), true);
    if (!is_array($a)) { echo "DECODE-ERROR ", json_last_error_msg(), "\n"; continue; }
    unset($a['sign']);
    ksort($a);
    $e = json_encode($a, JSON_UNESCAPED_UNICODE);
    if ($e === false) { echo "ENCODE-ERROR ", json_last_error_msg(), "\n"; continue; }
    echo md5($e), "\t", $e, "\n";
}
"#;

fn php() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/php/ensure-php.sh");
    let out = Command::new("sh")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "PHP is needed for this test and {} could not provide it (it installs Debian's php-cli \
         with apt-get, as root):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs every line through PHP; one output line per input line.
fn php_sign(php: &str, lines: &[String]) -> Vec<String> {
    let mut child = Command::new(php)
        .arg("-r")
        .arg(PHP)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("php starts");
    let mut input = String::new();
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("php runs");
    writer.join().unwrap().expect("php reads its input");
    assert!(out.status.success(), "php failed");
    let text = String::from_utf8(out.stdout).expect("php writes UTF-8");
    let got: Vec<String> = text.split('\n').map(str::to_owned).collect();
    assert_eq!(got.len(), lines.len() + 1, "one answer per frame");
    got[..lines.len()].to_vec()
}

struct Gen(ChaCha8Rng);

impl Gen {
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.0.random_range(0..from.len())]
    }

    fn char(&mut self) -> char {
        const AWKWARD: &[char] = &[
            '/',
            '"',
            '\\',
            '\u{0}',
            '\u{8}',
            '\u{c}',
            '\n',
            '\r',
            '\t',
            '\u{1f}',
            '\u{7f}',
            '\u{2028}',
            '\u{2029}',
            'é',
            '中',
            '😀',
            '\u{feff}',
            '\u{85}',
            ' ',
            '\u{10ffff}',
        ];
        match self.0.random_range(0..4) {
            0 => AWKWARD[self.0.random_range(0..AWKWARD.len())],
            1 => char::from_u32(self.0.random_range(0x80..0x3000)).unwrap_or('x'),
            _ => self.0.random_range(b' '..=b'~') as char,
        }
    }

    /// A JSON string literal, each character raw or escaped at random.
    fn string(&mut self, text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            let escape = (c as u32) < 0x20 || c == '"' || c == '\\' || self.0.random_bool(0.2);
            if !escape {
                out.push(c);
            } else if c == '/' && self.0.random_bool(0.5) {
                out.push_str("\\/");
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
        out.push('"');
        out
    }

    fn text(&mut self) -> String {
        let n = self.0.random_range(0..12);
        (0..n).map(|_| self.char()).collect()
    }

    fn number(&mut self) -> String {
        match self.0.random_range(0..8) {
            0 => self.0.random::<i64>().to_string(),
            1 => self.0.random_range(-1000i64..1000).to_string(),
            2 => self
                .pick(&[
                    "9223372036854775807",
                    "-9223372036854775808",
                    "9223372036854775808",
                    "-9223372036854775809",
                    "123456789012345678901234567890",
                    "-0",
                    "0",
                    "1.0",
                    "-0.0",
                    "1E5",
                    "2.50e-3",
                    "1e400",
                    "1e-400",
                    "0.1",
                    "100000000000000000.0",
                    "1e16",
                    "1e17",
                    "0.0001",
                    "0.00001",
                ])
                .to_owned(),
            3 => {
                let f = f64::from_bits(self.0.random());
                if f.is_finite() {
                    format!("{f:e}")
                } else {
                    "0.5".to_owned()
                }
            }
            4 => {
                let f = self.0.random::<f64>() * 10f64.powi(self.0.random_range(-8..22));
                format!("{f}")
            }
            5 => format!("{:?}", self.0.random_range(-1e6..1e6_f64)),
            6 => format!("{}", self.0.random_range(0..100_000) as f64 / 8.0),
            _ => format!(
                "{}e{}",
                self.0.random_range(1..99),
                self.0.random_range(-12..25)
            ),
        }
    }

    fn key(&mut self) -> String {
        match self.0.random_range(0..3) {
            0 => self
                .pick(&[
                    "0", "1", "2", "3", "05", "-0", "-3", "10", "", "a/b", "a", "b", "é",
                ])
                .to_owned(),
            1 => self.text(),
            _ => self.ident(),
        }
    }

    fn ident(&mut self) -> String {
        const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
        const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
        let n = self.0.random_range(0..10);
        let mut s = String::new();
        s.push(FIRST[self.0.random_range(0..FIRST.len())] as char);
        for _ in 0..n {
            s.push(REST[self.0.random_range(0..REST.len())] as char);
        }
        s
    }

    fn value(&mut self, depth: u32) -> String {
        let top = if depth >= 4 { 5 } else { 8 };
        match self.0.random_range(0..top) {
            0 | 1 => {
                let t = self.text();
                self.string(&t)
            }
            2 | 3 => self.number(),
            4 => self.pick(&["true", "false", "null"]).to_owned(),
            5 if depth >= 4 => "[]".to_owned(),
            5 => {
                let n = self.0.random_range(0..4);
                let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                // Often list-shaped ("0", "1", ...), so `{"0":..}` → `[..]` gets exercised.
                let n = self.0.random_range(0..4);
                let listy = self.0.random_bool(0.3);
                let members: Vec<String> = (0..n)
                    .map(|i| {
                        let k = if listy { i.to_string() } else { self.key() };
                        format!("{}:{}", self.string(&k), self.value(depth + 1))
                    })
                    .collect();
                format!("{{{}}}", members.join(","))
            }
        }
    }

    fn frame(&mut self) -> String {
        let n = self.0.random_range(1..9);
        let mut members: Vec<String> = (0..n)
            .map(|_| {
                let k = self.ident();
                format!("{}:{}", self.string(&k), self.value(1))
            })
            .collect();
        if self.0.random_bool(0.5) {
            let claimed = self.text();
            members.push(format!("\"sign\":{}", self.string(&claimed)));
        }
        format!("{{{}}}", members.join(","))
    }
}

#[test]
fn random_frames_sign_as_php_does() {
    let php = php();
    // A fixed seed by default (reproducible); PHP_JSON_SEED explores others.
    let seed = std::env::var("PHP_JSON_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0076_6f69_6365);
    let mut g = Gen(ChaCha8Rng::seed_from_u64(seed));
    let frames: Vec<String> = (0..FRAMES).map(|_| g.frame()).collect();
    // The driver's path: serde_json's map, written by serde_json.
    let maps: Vec<serde_json::Map<String, serde_json::Value>> = frames
        .iter()
        .filter_map(|f| match serde_json::from_str(f) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert!(maps.len() > FRAMES / 2, "most frames are serde_json's too");
    let written: Vec<String> = maps
        .iter()
        .map(|m| serde_json::Value::Object(m.clone()).to_string())
        .collect();
    let mut lines = frames.clone();
    lines.extend(written.iter().cloned());
    let answers = php_sign(&php, &lines);

    let mut mismatches = Vec::new();
    for (i, (line, answer)) in lines.iter().zip(&answers).enumerate() {
        if answer.starts_with("ENCODE-ERROR") && i < frames.len() {
            // An out-of-range number (INF): PHP cannot encode it, nor can we.
            let frame = php_json::decode(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(php_json::signed_text(&frame, "sign"), None, "{line}");
            continue;
        }
        let (php_md5, php_text) = answer
            .split_once('\t')
            .unwrap_or_else(|| panic!("PHP could not take frame {i} {line}: {answer}"));
        let ours = if i < frames.len() {
            let frame = php_json::decode(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let text = php_json::signed_text(&frame, "sign").expect("an object");
            (php_json::md5_hex(&text), text)
        } else {
            let map = &maps[i - frames.len()];
            let text = php_json::signed_text(
                &php_json::PhpValue::from_json(&serde_json::Value::Object(map.clone())),
                "sign",
            )
            .expect("an object");
            (php_json::sign_json(map, "sign"), text)
        };
        if ours.0 != php_md5 || ours.1 != php_text {
            mismatches.push(format!(
                "frame {i}: {line}\n  php:  {php_text}\n  ours: {}",
                ours.1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} frames differ from PHP (seed {seed:#x}):\n{}",
        mismatches.len(),
        lines.len(),
        mismatches[..mismatches.len().min(5)].join("\n")
    );
}
