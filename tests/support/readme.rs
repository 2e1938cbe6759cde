//! The README's console examples marked `<!-- run-local -->`: each `$ mirrorscope ...` command
//! with the output the README shows for it, so a test can run it against `scripts/run-local`.

/// One example command and the output lines the README shows after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The arguments after `mirrorscope`, split at spaces (the examples quote nothing).
    pub args: Vec<String>,
    /// Text after `&&` or `|` on the command line (`echo landed`, a `jq` filter).
    pub then: Option<String>,
    pub output: Vec<String>,
}

/// The marker that opens a checked block.
pub const MARKER: &str = "<!-- run-local -->";

/// Every example in the README's marked `console` blocks, in order.
pub fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find(MARKER) {
        rest = &rest[at + MARKER.len()..];
        let Some(open) = rest.find("```console\n") else {
            break;
        };
        let body = &rest[open + "```console\n".len()..];
        let end = body.find("```").unwrap_or(body.len());
        for chunk in body[..end]
            .split("\n$ ")
            .map(|c| c.trim_start_matches("$ "))
        {
            let mut lines = chunk.lines();
            let Some(cmd) = lines.next() else { continue };
            let Some(cmd) = cmd.strip_prefix("mirrorscope ") else {
                continue;
            };
            let (cmd, then) = match cmd.find(" && ").or_else(|| cmd.find(" | ")) {
                Some(i) => (
                    &cmd[..i],
                    Some(cmd[i..].trim_start_matches([' ', '&', '|']).to_string()),
                ),
                None => (cmd, None),
            };
            out.push(Example {
                args: cmd.split_whitespace().map(str::to_string).collect(),
                then,
                output: lines
                    .map(str::trim_end)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
        rest = &body[end..];
    }
    out
}

/// A line as compared: columns joined by one space, times and ages replaced by placeholders
/// (the replayed journal's times depend on when it was replayed).
pub fn normalized(line: &str) -> String {
    line.split_whitespace()
        .map(|w| {
            let b = w.as_bytes();
            let is_time = b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T';
            if is_time {
                "<time>"
            } else if w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok() {
                "<age>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_marked_commands_with_their_output() {
        let md = "text\n```console\n$ mirrorscope not-marked\n```\n<!-- run-local -->\n```console\n$ mirrorscope status\nA  B\n1  2\n\n$ mirrorscope wait --timeout 1m && echo landed\nlanded\n$ oc get nodes\n$ mirrorscope pulls -o json | jq .\n```\n";
        let ex = examples(md);
        assert_eq!(ex.len(), 3, "{ex:?}");
        assert_eq!(ex[0].args, ["status"]);
        assert_eq!(ex[0].output, ["A  B", "1  2"]);
        assert_eq!(ex[1].args, ["wait", "--timeout", "1m"]);
        assert_eq!(ex[1].then.as_deref(), Some("echo landed"));
        assert_eq!(ex[1].output, ["landed"]);
        assert_eq!(ex[2].then.as_deref(), Some("jq ."));
        assert!(ex[2].output.is_empty());
    }

    #[test]
    fn times_and_ages_are_placeholders() {
        assert_eq!(
            normalized("2026-11-21T08:40:05.407943Z  example-node   12s ago  pulled after 0.3s"),
            "<time> example-node <age> ago pulled after <age>"
        );
    }
}
