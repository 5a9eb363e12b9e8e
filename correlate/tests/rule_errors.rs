//! Rule loading errors, as golden files: each `rule_errors/NAME.yaml` is
//! compiled alone and every error it reports (file:line:col: message) must
//! equal `rule_errors/NAME.expected`. `UPDATE_GOLDEN=1` rewrites them.
//! A case named `one-mistake-*` holds one mistake, and must be said in one
//! error: no follow-on errors of it.

use std::path::Path;

use correlate::rules::{RuleSource, compile};

#[test]
fn rule_errors_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rule_errors");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("rule_errors dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        cases += 1;
        let name = format!(
            "rule_errors/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
        );
        let text = std::fs::read_to_string(&path).expect("read case");
        let got = match compile(&[RuleSource { name, text }]) {
            Ok(_) => panic!("{}: expected errors, the rules compiled", path.display()),
            Err(e) => format!("{e}\n"),
        };
        let one_mistake = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("one-mistake-"));
        assert!(
            !one_mistake || got.lines().count() == 1,
            "{}: one mistake, said in more than one error:\n{got}",
            path.display()
        );
        let golden = path.with_extension("expected");
        if update {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", golden.display()));
        assert_eq!(
            got,
            want,
            "errors of {} differ from its golden file",
            path.display()
        );
    }
    assert!(cases >= 6, "only {cases} cases found");
}

#[test]
fn the_shipped_rule_pack_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut sources = Vec::new();
    for e in std::fs::read_dir(&dir).expect("rules dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|e| e == "yaml") {
            sources.push(RuleSource {
                name: p.display().to_string(),
                text: std::fs::read_to_string(&p).expect("read"),
            });
        }
    }
    let set = compile(&sources).unwrap_or_else(|e| panic!("shipped rules do not compile:\n{e}"));
    assert!(set.correlations.len() >= 8 && set.absences.len() >= 3);
}
