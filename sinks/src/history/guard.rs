//! The read-only guard: what SQL may run over the store.
//!
//! Three independent checks, so one mistake does not open the store:
//!
//! 1. **The statement** ([`check_statements`]), parsed with DataFusion's own
//!    parser: exactly one statement, and it must be a query (`SELECT`,
//!    `WITH`, `VALUES`, or `EXPLAIN` of one). Inside it: no table functions,
//!    no `SELECT INTO`, no file paths or URLs as table names. Everything
//!    else (DDL, DML, `COPY`, `CREATE EXTERNAL TABLE`, `SET`, `SHOW`,
//!    `PREPARE`/`EXECUTE`, transactions, several statements) is refused by
//!    name.
//! 2. **DataFusion's `SQLOptions`** at planning: no DDL, no DML, no
//!    statements.
//! 3. **The logical plan** ([`check_plan`]), subqueries included: the only
//!    leaves that read data are scans of the store's own tables (compared by
//!    identity, not by name) and of `information_schema`; no DML, DDL,
//!    `COPY`, statement or extension node anywhere.
//!
//! Underneath, the session has no object store but the history directory
//! (no `file://`), no table factories and no dynamic file catalog, so even a
//! plan that got through could not reach another file.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, Visit, Visitor,
};

/// Why a statement was refused (the text of [`super::QueryError::Refused`]).
pub(super) type Refusal = String;

const ONLY: &str = "only a query (SELECT, WITH, VALUES, or EXPLAIN of one) may run";

/// Checks the parsed statements: one query, read-only.
pub(super) fn check_statements(statements: &[DfStatement]) -> Result<(), Refusal> {
    match statements {
        [] => Err("no statement".to_string()),
        [one] => check_statement(one),
        many => Err(format!("{} statements: one query at a time", many.len())),
    }
}

fn check_statement(s: &DfStatement) -> Result<(), Refusal> {
    match s {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => check_query(q),
            other => Err(format!("{}: {ONLY}", statement_name(other))),
        },
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(format!("CREATE EXTERNAL TABLE: {ONLY}")),
        DfStatement::CopyTo(_) => Err(format!("COPY: {ONLY}")),
        DfStatement::Reset(_) => Err(format!("RESET: {ONLY}")),
    }
}

/// The leading keywords of a statement (`CREATE TABLE`, `INSERT`, `SET`),
/// as its SQL text spells them.
fn statement_name(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take(3)
        .take_while(|w| w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    match words.as_slice() {
        [] => "this statement".to_string(),
        // `INSERT INTO`, `DELETE FROM`: the verb says it.
        [first, "INTO" | "FROM" | "OVERWRITE", ..] => (*first).to_string(),
        _ => words.join(" "),
    }
}

struct QueryCheck {
    refused: Option<Refusal>,
}

impl Visitor for QueryCheck {
    type Break = ();

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(into) = &select.into {
            self.refused = Some(format!(
                "SELECT INTO {} would create a table: {ONLY}",
                into.name
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        let refused = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(format!(
                "table function {name}(...): only the history tables can be read"
            )),
            TableFactor::Table { name, .. } => path_like(name)
                .map(|p| format!("`{p}` is a file or URL: only the history tables can be read")),
            TableFactor::TableFunction { expr, .. } => Some(format!(
                "table function TABLE({expr}): only the history tables can be read"
            )),
            TableFactor::Function { name, .. } => Some(format!(
                "table function {name}(...): only the history tables can be read"
            )),
            TableFactor::JsonTable { .. } | TableFactor::OpenJsonTable { .. } => {
                Some("JSON_TABLE: only the history tables can be read".to_string())
            }
            _ => None,
        };
        match refused {
            Some(r) => {
                self.refused = Some(r);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

/// A table name that names a file or URL (what DataFusion's dynamic file
/// catalog would open): quoted with `'`, or holding `/`, `\` or `:`.
fn path_like(name: &ObjectName) -> Option<String> {
    name.0.iter().find_map(|part| match part {
        ObjectNamePart::Identifier(id)
            if id.quote_style == Some('\'') || id.value.contains(['/', '\\', ':']) =>
        {
            Some(id.value.clone())
        }
        ObjectNamePart::Function(f) => Some(format!("{}(...)", f.name)),
        _ => None,
    })
}

fn check_query(q: &Query) -> Result<(), Refusal> {
    if let SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) =
        q.body.as_ref()
    {
        return Err(format!("a data-modifying WITH: {ONLY}"));
    }
    let mut check = QueryCheck { refused: None };
    let _ = q.visit(&mut check);
    match check.refused {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

/// Checks a logical plan: only scans of `allowed` tables (by identity) or
/// of `information_schema`, and no node that writes or changes state.
pub(super) fn check_plan(
    plan: &LogicalPlan,
    allowed: &[Arc<dyn TableProvider>],
) -> Result<(), Refusal> {
    let mut refused: Option<Refusal> = None;
    let walk = plan.apply_with_subqueries(|node| {
        let r = match node {
            LogicalPlan::TableScan(scan) => {
                let ours = source_as_provider(&scan.source)
                    .map(|p| allowed.iter().any(|a| same(a, &p)))
                    .unwrap_or(false);
                let catalog = scan.table_name.schema() == Some("information_schema");
                (!ours && !catalog).then(|| {
                    format!(
                        "reading `{}`: only the history tables can be read",
                        scan.table_name
                    )
                })
            }
            LogicalPlan::Dml(d) => Some(format!("{} on {}: {ONLY}", d.op, d.table_name)),
            LogicalPlan::Ddl(d) => Some(format!("{}: {ONLY}", d.name())),
            LogicalPlan::Copy(c) => Some(format!("COPY TO {}: {ONLY}", c.output_url)),
            LogicalPlan::Statement(s) => Some(format!("{}: {ONLY}", s.name())),
            LogicalPlan::DescribeTable(_) => Some(format!("DESCRIBE: {ONLY}")),
            LogicalPlan::Extension(e) => Some(format!("{}: {ONLY}", e.node.name())),
            _ => None,
        };
        if let Some(r) = r {
            refused = Some(r);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if let Err(e) = walk {
        return Err(format!("the plan could not be checked: {e}"));
    }
    match refused {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

fn same(a: &Arc<dyn TableProvider>, b: &Arc<dyn TableProvider>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}
