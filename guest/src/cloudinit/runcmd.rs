//! `runcmd` as steps the simulator can act on. cloud-init writes the commands into one
//! `#!/bin/sh` script (`util.shellify`: a string item is a script line, a list item is argv with
//! every word single-quoted) and runs it; here each line is split into simple commands and the
//! few that matter to bootstrap are recognised: `kubeadm init|join` and `echo TEXT > FILE`
//! (how CABPK writes its bootstrap sentinel). Everything else is recorded, not run.
//!
//! The lexer knows enough POSIX sh to find command boundaries and words: quotes, backslashes,
//! `$(...)` and backticks, comments, `&&`, `;`, newlines and redirections. A command that is a
//! pipeline, a background job, a subshell or a heredoc is recorded whole.

/// One `runcmd`/`bootcmd` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A string: a line of the sh script.
    Shell(String),
    /// A list: argv, run without a shell.
    Argv(Vec<String>),
}

impl Command {
    /// The line `util.shellify` writes for this item.
    pub fn script_line(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Argv(argv) => argv
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `kubeadm init`; `config` is the `--config` file as given (empty when absent).
    KubeadmInit { config: String },
    /// `kubeadm join`; `config` as for init.
    KubeadmJoin { config: String },
    /// `echo TEXT > PATH` (or `>>` with `append`). `text` is echo's arguments joined by single
    /// spaces; echo adds a newline after it, which the executor must write too.
    WriteText { path: String, text: String, append: bool },
    /// `mkdir -p DIR...` (unit scripts only).
    MakeDirs { paths: Vec<String> },
    /// `mv SRC DST` (unit scripts only); DST may be a directory.
    Move { from: String, to: String },
    /// `envsubst < SRC > DST` (unit scripts only).
    Envsubst { input: String, output: String },
    /// Any other simple command, as written.
    Recorded(String),
}

/// Which commands the planner executes: cloud-init's runcmd keeps its historical set; a
/// systemd unit's script (Ignition boots) also moves files and runs envsubst, as CABPK's
/// Ignition `kubeadm.sh` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    RunCmd,
    UnitScript,
}

/// When a step runs, relative to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunIf {
    /// After `;`, a newline or a new runcmd item: the runcmd script has no `set -e`.
    Always,
    /// After `&&`.
    PreviousSucceeded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub step: Step,
    pub run_if: RunIf,
}

/// The steps of a runcmd list, in order.
pub fn plan(commands: &[Command]) -> Vec<Step> {
    plan_detailed(commands).into_iter().map(|p| p.step).collect()
}

/// Like [`plan`], with how each step depends on the previous one's exit status.
pub fn plan_detailed(commands: &[Command]) -> Vec<PlannedStep> {
    let mut out = Vec::new();
    for command in commands {
        match command {
            Command::Shell(script) => plan_script(script, RunIf::Always, Dialect::RunCmd, &mut out),
            Command::Argv(argv) => {
                let words: Vec<Word> = argv
                    .iter()
                    .map(|a| Word {
                        text: a.clone(),
                        expands: false,
                        quote_at: Some(0),
                    })
                    .collect();
                classify(
                    &command.script_line(),
                    &words,
                    &[],
                    RunIf::Always,
                    Dialect::RunCmd,
                    &mut out,
                );
            }
        }
    }
    out
}

/// The steps of a shell script a systemd unit runs (the script's own lines, `set -e` recorded).
pub fn plan_unit_script(script: &str) -> Vec<PlannedStep> {
    let mut out = Vec::new();
    plan_script(script, RunIf::Always, Dialect::UnitScript, &mut out);
    out
}

fn plan_script(script: &str, first: RunIf, dialect: Dialect, out: &mut Vec<PlannedStep>) {
    let Some(segments) = split(script) else {
        // Unbalanced quotes or a heredoc: sh would either fail or read past this line.
        out.push(PlannedStep {
            step: Step::Recorded(script.trim().to_string()),
            run_if: first,
        });
        return;
    };
    for (i, seg) in segments.into_iter().enumerate() {
        let run_if = if i == 0 && first == RunIf::PreviousSucceeded {
            first
        } else {
            seg.run_if
        };
        classify_tokens(&seg, run_if, dialect, out);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    /// After quote removal.
    text: String,
    /// Contains `$` or a backtick outside single quotes: its value is only known at run time.
    expands: bool,
    /// Byte offset in `text` where quoting first applied (an assignment's name must be bare).
    quote_at: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    /// A digit string glued to a redirection operator (`2>`).
    IoNumber(u32),
    Op(&'static str),
}

struct Segment<'a> {
    text: &'a str,
    toks: Vec<Tok>,
    run_if: RunIf,
}

struct Redir {
    fd: Option<u32>,
    op: &'static str,
    target: Word,
}

/// Splits a script into simple commands at `&&`, `;` and newlines, or `None` when it cannot be
/// followed (an unterminated quote, a heredoc).
fn split(script: &str) -> Option<Vec<Segment<'_>>> {
    let mut lx = Lexer {
        chars: script.char_indices().peekable(),
        toks: Vec::new(),
        word: None,
    };
    let mut out = Segments {
        script,
        segments: Vec::new(),
        start: 0,
        next_if: RunIf::Always,
    };
    while let Some((i, c)) = lx.chars.next() {
        match c {
            ' ' | '\t' => lx.end_word(),
            '\n' => out.close(&mut lx, i, i + 1, None),
            ';' => {
                if lx.chars.peek().is_some_and(|(_, n)| *n == ';') {
                    return None; // a `case` arm: not a simple command list
                }
                out.close(&mut lx, i, i + 1, Some(RunIf::Always));
            }
            '&' if lx.chars.peek().is_some_and(|(_, n)| *n == '&') => {
                lx.chars.next();
                out.close(&mut lx, i, i + 2, Some(RunIf::PreviousSucceeded));
            }
            '&' => lx.op("&"),
            '|' if lx.chars.peek().is_some_and(|(_, n)| *n == '|') => {
                lx.chars.next();
                lx.op("||");
            }
            '|' => lx.op("|"),
            '(' => lx.op("("),
            ')' => lx.op(")"),
            '<' | '>' => lx.redirection(c)?,
            '#' if lx.word.is_none() => while lx.chars.next_if(|(_, n)| *n != '\n').is_some() {},
            '\'' => {
                let w = lx.word_mut();
                w.quote_at.get_or_insert(w.text.len());
                loop {
                    match lx.chars.next()? {
                        (_, '\'') => break,
                        (_, ch) => lx.word_mut().text.push(ch),
                    }
                }
            }
            '"' => lx.double_quoted()?,
            '\\' => match lx.chars.next() {
                Some((_, '\n')) => {}
                Some((_, ch)) => {
                    let w = lx.word_mut();
                    w.quote_at.get_or_insert(w.text.len());
                    w.text.push(ch);
                }
                None => lx.word_mut().text.push('\\'),
            },
            '$' | '`' => lx.expansion(c)?,
            _ => lx.word_mut().text.push(c),
        }
    }
    out.close(&mut lx, script.len(), script.len(), None);
    Some(out.segments)
}

struct Segments<'a> {
    script: &'a str,
    segments: Vec<Segment<'a>>,
    start: usize,
    /// How the next command depends on the one before it.
    next_if: RunIf,
}

impl<'a> Segments<'a> {
    /// Ends the command running from `start` to `end` (a separator `sep` ends it; `None` is a
    /// newline or the end); the next one starts at `resume`.
    fn close(&mut self, lx: &mut Lexer, end: usize, resume: usize, sep: Option<RunIf>) {
        lx.end_word();
        let toks = std::mem::take(&mut lx.toks);
        // An empty command (`a &&` then a newline) leaves the pending condition as it was.
        if !toks.is_empty() {
            self.segments.push(Segment {
                text: self.script[self.start..end].trim(),
                toks,
                run_if: self.next_if,
            });
            self.next_if = sep.unwrap_or(RunIf::Always);
        }
        self.start = resume;
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    toks: Vec<Tok>,
    word: Option<Word>,
}

impl Lexer<'_> {
    fn word_mut(&mut self) -> &mut Word {
        self.word.get_or_insert_with(|| Word {
            text: String::new(),
            expands: false,
            quote_at: None,
        })
    }

    fn end_word(&mut self) {
        if let Some(w) = self.word.take() {
            self.toks.push(Tok::Word(w));
        }
    }

    fn op(&mut self, op: &'static str) {
        self.end_word();
        self.toks.push(Tok::Op(op));
    }

    fn redirection(&mut self, c: char) -> Option<()> {
        // `2>file`: a bare digit string right before the operator names the descriptor.
        let io_number = self
            .word
            .as_ref()
            .filter(|w| {
                w.quote_at.is_none() && !w.expands && !w.text.is_empty() && w.text.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|w| w.text.parse::<u32>().ok());
        match io_number {
            Some(n) => {
                self.word = None;
                self.toks.push(Tok::IoNumber(n));
            }
            None => self.end_word(),
        }
        let next = self.chars.peek().map(|(_, n)| *n);
        let op = match (c, next) {
            ('>', Some('>')) => ">>",
            ('>', Some('&')) => ">&",
            ('>', Some('|')) => ">|",
            ('<', Some('<')) => return None, // heredoc: its body follows on later lines
            ('<', Some('&')) => "<&",
            ('<', Some('>')) => "<>",
            ('>', _) => ">",
            _ => "<",
        };
        if op.len() == 2 {
            self.chars.next();
        }
        self.toks.push(Tok::Op(op));
        Some(())
    }

    fn double_quoted(&mut self) -> Option<()> {
        let w = self.word_mut();
        w.quote_at.get_or_insert(w.text.len());
        loop {
            let (_, c) = self.chars.next()?;
            match c {
                '"' => return Some(()),
                '\\' => match self.chars.next()? {
                    (_, '\n') => {}
                    (_, ch @ ('$' | '`' | '"' | '\\')) => self.word_mut().text.push(ch),
                    (_, ch) => {
                        let w = self.word_mut();
                        w.text.push('\\');
                        w.text.push(ch);
                    }
                },
                '$' | '`' => self.expansion(c)?,
                _ => self.word_mut().text.push(c),
            }
        }
    }

    /// `$name`, `${...}`, `$(...)` or a backtick command: kept verbatim, marked as expanding.
    fn expansion(&mut self, c: char) -> Option<()> {
        self.word_mut().expands = true;
        self.word_mut().text.push(c);
        let close = match (c, self.chars.peek().map(|(_, n)| *n)) {
            ('`', _) => '`',
            ('$', Some('(')) => ')',
            ('$', Some('{')) => '}',
            _ => return Some(()),
        };
        let open = if c == '`' {
            None
        } else {
            let (_, o) = self.chars.next()?;
            self.word_mut().text.push(o);
            Some(o)
        };
        let mut depth = 1;
        loop {
            let (_, ch) = self.chars.next()?;
            self.word_mut().text.push(ch);
            match ch {
                '\\' => {
                    let (_, escaped) = self.chars.next()?;
                    self.word_mut().text.push(escaped);
                }
                '\'' if close != '`' => loop {
                    let (_, q) = self.chars.next()?;
                    self.word_mut().text.push(q);
                    if q == '\'' {
                        break;
                    }
                },
                _ if Some(ch) == open => depth += 1,
                _ if ch == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
    }
}

fn classify_tokens(seg: &Segment<'_>, run_if: RunIf, dialect: Dialect, out: &mut Vec<PlannedStep>) {
    let recorded = |out: &mut Vec<PlannedStep>| {
        out.push(PlannedStep {
            step: Step::Recorded(seg.text.to_string()),
            run_if,
        })
    };
    if seg
        .toks
        .iter()
        .any(|t| matches!(t, Tok::Op("|" | "||" | "&" | "(" | ")")))
    {
        return recorded(out);
    }
    let mut words = Vec::new();
    let mut redirs = Vec::new();
    let mut toks = seg.toks.iter();
    while let Some(tok) = toks.next() {
        let (fd, op) = match tok {
            Tok::Word(w) => {
                words.push(w.clone());
                continue;
            }
            Tok::IoNumber(n) => match toks.next() {
                Some(Tok::Op(op)) => (Some(*n), *op),
                _ => return recorded(out),
            },
            Tok::Op(op) => (None, *op),
        };
        let Some(Tok::Word(target)) = toks.next() else {
            return recorded(out);
        };
        redirs.push(Redir {
            fd,
            op,
            target: target.clone(),
        });
    }
    classify(seg.text, &words, &redirs, run_if, dialect, out);
}

fn classify(
    original: &str,
    words: &[Word],
    redirs: &[Redir],
    run_if: RunIf,
    dialect: Dialect,
    out: &mut Vec<PlannedStep>,
) {
    let words = &words[words.iter().take_while(|w| is_assignment(w)).count()..];
    let step = match words.split_first() {
        Some((cmd, args)) if !cmd.expands => {
            let name = cmd.text.rsplit('/').next().unwrap_or_default();
            match name {
                "kubeadm" => kubeadm(args),
                "echo" if matches!(cmd.text.as_str(), "echo" | "/bin/echo" | "/usr/bin/echo") => echo(args, redirs),
                "sh" | "bash" | "dash" if args.first().is_some_and(|a| a.text == "-c") => match args.get(1) {
                    Some(script) if !script.expands => return plan_script(&script.text, run_if, dialect, out),
                    _ => None,
                },
                "mkdir" | "mv" | "envsubst" if dialect == Dialect::UnitScript => file_command(name, args, redirs),
                _ => None,
            }
        }
        _ => None,
    };
    out.push(PlannedStep {
        step: step.unwrap_or_else(|| Step::Recorded(original.to_string())),
        run_if,
    });
}

/// `NAME=value` before the command word.
fn is_assignment(w: &Word) -> bool {
    let Some(eq) = w.text.find('=') else { return false };
    let name = &w.text[..eq];
    w.quote_at.is_none_or(|q| q > eq)
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Global flags that take their value as the next word (`kubeadm --v 5 init`).
const KUBEADM_VALUE_FLAGS: [&str; 3] = ["--v", "-v", "--rootfs"];

fn kubeadm(args: &[Word]) -> Option<Step> {
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| a.text.starts_with('-')) {
        i += if KUBEADM_VALUE_FLAGS.contains(&a.text.as_str()) {
            2
        } else {
            1
        };
    }
    let sub = args.get(i)?;
    let rest = &args[i + 1..];
    // `kubeadm init phase ...` runs one phase, not the whole init.
    if rest.first().is_some_and(|w| w.text == "phase") {
        return None;
    }
    let mut config = String::new();
    let mut j = 0;
    while j < rest.len() {
        let a = &rest[j];
        if a.text == "--config" {
            // pflag takes the next word whatever it is; without one kubeadm fails.
            let v = rest.get(j + 1)?;
            if v.expands {
                return None;
            }
            config = v.text.clone();
            j += 2;
            continue;
        }
        if let Some(v) = a.text.strip_prefix("--config=") {
            if a.expands {
                return None;
            }
            config = v.to_string();
        }
        j += 1;
    }
    match sub.text.as_str() {
        "init" => Some(Step::KubeadmInit { config }),
        "join" => Some(Step::KubeadmJoin { config }),
        _ => None,
    }
}

/// `mkdir -p`, `mv SRC DST` and `envsubst < SRC > DST`, with literal words only.
fn file_command(name: &str, args: &[Word], redirs: &[Redir]) -> Option<Step> {
    if args.iter().chain(redirs.iter().map(|r| &r.target)).any(|w| w.expands) {
        return None;
    }
    let text = |w: &Word| w.text.clone();
    match (name, args, redirs) {
        ("mkdir", [flag, paths @ ..], []) if flag.text == "-p" && !paths.is_empty() => Some(Step::MakeDirs {
            paths: paths.iter().map(text).collect(),
        }),
        ("mv", [from, to], []) if !from.text.starts_with('-') && !to.text.starts_with('-') => Some(Step::Move {
            from: text(from),
            to: text(to),
        }),
        ("envsubst", [], [a, b]) if a.fd.is_none() && a.op == "<" && b.fd.is_none() && b.op == ">" => {
            Some(Step::Envsubst {
                input: text(&a.target),
                output: text(&b.target),
            })
        }
        ("envsubst", [], [b, a]) if a.fd.is_none() && a.op == "<" && b.fd.is_none() && b.op == ">" => {
            Some(Step::Envsubst {
                input: text(&a.target),
                output: text(&b.target),
            })
        }
        _ => None,
    }
}

fn echo(args: &[Word], redirs: &[Redir]) -> Option<Step> {
    // Expansions are unknown here, and dash's echo interprets backslash escapes.
    if args.iter().any(|w| w.expands || w.text.contains('\\')) {
        return None;
    }
    // -n drops the newline; -e/-E differ between dash and bash. Neither fits WriteText.
    if args.first().is_some_and(|w| {
        w.text.len() > 1 && w.text.starts_with('-') && w.text[1..].chars().all(|c| matches!(c, 'n' | 'e' | 'E'))
    }) {
        return None;
    }
    let [redir] = redirs else { return None };
    if redir.fd.is_some_and(|fd| fd != 1) || redir.target.expands {
        return None;
    }
    let append = match redir.op {
        ">" | ">|" => false,
        ">>" => true,
        _ => return None,
    };
    Some(Step::WriteText {
        path: redir.target.text.clone(),
        text: args.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "),
        append,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(s: &str) -> Vec<Step> {
        plan(&[Command::Shell(s.into())])
    }

    fn rec(s: &str) -> Step {
        Step::Recorded(s.into())
    }

    #[test]
    fn cabpk_kubeadm_lines() {
        assert_eq!(
            shell(
                "kubeadm init --config /run/kubeadm/kubeadm.yaml  && echo success > /run/cluster-api/bootstrap-success.complete"
            ),
            [
                Step::KubeadmInit {
                    config: "/run/kubeadm/kubeadm.yaml".into()
                },
                Step::WriteText {
                    path: "/run/cluster-api/bootstrap-success.complete".into(),
                    text: "success".into(),
                    append: false
                }
            ]
        );
        let d = plan_detailed(&[Command::Shell(
            "kubeadm join --config=/j.yaml --v 5 && echo ok >>/x".into(),
        )]);
        assert_eq!(
            d[0].step,
            Step::KubeadmJoin {
                config: "/j.yaml".into()
            }
        );
        assert_eq!(d[1].run_if, RunIf::PreviousSucceeded);
        assert_eq!(
            d[1].step,
            Step::WriteText {
                path: "/x".into(),
                text: "ok".into(),
                append: true
            }
        );
    }

    #[test]
    fn kubeadm_flag_forms() {
        let init = |c: &str| Step::KubeadmInit { config: c.into() };
        assert_eq!(
            shell("kubeadm --v=5 init --ignore-preflight-errors=all --config /a"),
            [init("/a")]
        );
        assert_eq!(
            shell("/usr/bin/kubeadm init --skip-phases=addon/kube-proxy"),
            [init("")]
        );
        assert_eq!(
            shell("KUBECONFIG=/x kubeadm init --config '/my dir/a.yaml' 2>&1"),
            [init("/my dir/a.yaml")]
        );
        assert_eq!(
            plan(&[Command::Argv(vec![
                "kubeadm".into(),
                "init".into(),
                "--config".into(),
                "/run/kubeadm/kubeadm.yaml".into()
            ])]),
            [init("/run/kubeadm/kubeadm.yaml")]
        );
        assert_eq!(
            shell("kubeadm init phase preflight"),
            [rec("kubeadm init phase preflight")]
        );
        assert_eq!(shell("kubeadm init --config $CFG"), [rec("kubeadm init --config $CFG")]);
        assert_eq!(shell("kubeadm reset -f"), [rec("kubeadm reset -f")]);
    }

    #[test]
    fn quoting_keeps_separators_inside_words() {
        assert_eq!(
            shell("echo 'a && b; c' > /f; echo \"x;y\" >> /g && touch /h"),
            [
                Step::WriteText {
                    path: "/f".into(),
                    text: "a && b; c".into(),
                    append: false
                },
                Step::WriteText {
                    path: "/g".into(),
                    text: "x;y".into(),
                    append: true
                },
                rec("touch /h"),
            ]
        );
        assert_eq!(
            shell("sh -c 'kubeadm join --config /j && echo done > /s'"),
            [
                Step::KubeadmJoin { config: "/j".into() },
                Step::WriteText {
                    path: "/s".into(),
                    text: "done".into(),
                    append: false
                }
            ]
        );
        assert_eq!(
            shell("echo $(date; hostname) > /f"),
            [rec("echo $(date; hostname) > /f")]
        );
        // The backslash quotes the `;`; one left after quote removal is an echo escape in dash.
        assert_eq!(
            shell("echo a\\;b > /f"),
            [Step::WriteText {
                path: "/f".into(),
                text: "a;b".into(),
                append: false
            }]
        );
        assert_eq!(shell("echo 'a\\nb' > /f"), [rec("echo 'a\\nb' > /f")]);
    }

    #[test]
    fn what_is_only_recorded() {
        assert_eq!(shell("echo hi"), [rec("echo hi")]);
        assert_eq!(shell("echo -n hi > /f"), [rec("echo -n hi > /f")]);
        assert_eq!(shell("echo hi 2> /f"), [rec("echo hi 2> /f")]);
        assert_eq!(shell("kubeadm init | tee /log"), [rec("kubeadm init | tee /log")]);
        assert_eq!(shell("a || b"), [rec("a || b")]);
        assert_eq!(shell("cat <<EOF\nx\nEOF"), [rec("cat <<EOF\nx\nEOF")]);
        assert_eq!(shell("echo 'unterminated"), [rec("echo 'unterminated")]);
        assert_eq!(shell("  # just a comment\n\n"), []);
        assert_eq!(
            plan(&[Command::Argv(vec!["echo".into(), "it's".into()])]),
            [rec("'echo' 'it'\\''s'")]
        );
    }

    #[test]
    fn unit_scripts_move_files_and_substitute() {
        let steps: Vec<Step> = plan_unit_script(
            "#!/bin/bash\nset -e\nenvsubst < /etc/kubeadm.yml > /etc/kubeadm.yml.tmp\nmv /etc/kubeadm.yml.tmp /etc/kubeadm.yml\nmkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete\nmv /etc/kubeadm.yml /tmp/\nmv $A /b",
        )
        .into_iter()
        .map(|p| p.step)
        .collect();
        assert_eq!(steps[0], rec("set -e"));
        assert_eq!(
            steps[1],
            Step::Envsubst {
                input: "/etc/kubeadm.yml".into(),
                output: "/etc/kubeadm.yml.tmp".into()
            }
        );
        assert_eq!(
            steps[2],
            Step::Move {
                from: "/etc/kubeadm.yml.tmp".into(),
                to: "/etc/kubeadm.yml".into()
            }
        );
        assert_eq!(
            steps[3],
            Step::MakeDirs {
                paths: vec!["/run/cluster-api".into()]
            }
        );
        assert_eq!(steps[6], rec("mv $A /b"));
        // cloud-init's runcmd keeps recording them.
        assert_eq!(shell("mkdir -p /x"), [rec("mkdir -p /x")]);
    }

    #[test]
    fn newlines_and_run_conditions() {
        let d = plan_detailed(&[Command::Shell("a &&\n  b\nc; d".into()), Command::Shell("e".into())]);
        let got: Vec<(Step, RunIf)> = d.into_iter().map(|p| (p.step, p.run_if)).collect();
        assert_eq!(
            got,
            [
                (rec("a"), RunIf::Always),
                (rec("b"), RunIf::PreviousSucceeded),
                (rec("c"), RunIf::Always),
                (rec("d"), RunIf::Always),
                (rec("e"), RunIf::Always),
            ]
        );
    }
}
