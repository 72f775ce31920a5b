//! Step conditions written as expressions, in CEL (the Common Expression Language), through the
//! maintained `cel` crate rather than a language of our own. Variables of the run are the
//! expression's variables, e.g. `status == 0 && http_status < 300`.
//!
//! Flows come from users and the API, so an expression is untrusted input. The CEL parser and
//! evaluator recurse over the expression, and a long chain of terms or deep nesting used to
//! overflow the stack and abort the whole process (a stack overflow cannot be caught). So:
//! - [`check_bounds`] limits size, bracket nesting and the number of operators *before* any
//!   parser sees the text (also used for JSONPath);
//! - the parser runs on a thread of its own with a large stack, inside `catch_unwind`, so a
//!   parser panic becomes a validation error (the workspace keeps the default `unwind` strategy);
//! - evaluation runs inline only for shallow syntax trees (every ordinary condition) and on a
//!   thread with a large stack otherwise, so no condition that passed the bounds recurses deeply
//!   on a runtime worker thread.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use serde_json::Value;

/// Longest expression accepted, in bytes (conditions and JSONPath).
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of `(`, `[` and `{` accepted.
pub const MAX_EXPRESSION_NESTING: usize = 32;
/// Most operators accepted: binary and unary operators (`||`, `&&`, `==`, `<`, `+`, `!`, `?`, `in`,
/// …), member accesses (`.name`) and index or list brackets (`[`) — each adds a level or a term to
/// the syntax tree.
pub const MAX_EXPRESSION_OPERATORS: usize = 256;

/// Most comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) one inside the body of
/// another: each level multiplies the work and the memory of an evaluation by its list's length,
/// so a 4 KiB condition of three nested `map`s over literal lists would build billions of values.
pub const MAX_COMPREHENSION_NESTING: usize = 1;

/// Stack of the thread that parses a condition. The generated CEL parser needs ~150 KiB per
/// nesting level in unoptimised builds; the bounds keep it far below this.
const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// Syntax trees up to this depth are evaluated on the caller's thread (~40 KiB of stack per
/// level in unoptimised builds, far less optimised); every ordinary condition is this shallow.
const INLINE_EVAL_DEPTH: usize = 12;
/// Stack of the thread that evaluates a deeper tree.
const EVAL_STACK_BYTES: usize = 64 * 1024 * 1024;

thread_local! {
    /// CEL's standard functions, built once per thread (building them registers every function
    /// and showed up in profiles when done for every evaluation); each evaluation adds the run's
    /// variables in a scope of its own.
    static STANDARD: cel::Context<'static, 'static> = cel::Context::default();
}

/// A compiled condition.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<cel::Program>,
    variables: Arc<[String]>,
    depth: usize,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// How big an expression is, as far as recursion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    bytes: usize,
    nesting: usize,
    operators: usize,
}

/// Checks an expression's size, nesting and operator count (the `MAX_EXPRESSION_*` limits)
/// without parsing it; the error names `what` (e.g. "the condition") and the limit. `raw_strings`
/// says whether `r'…'` strings exist in the language (CEL: yes, JSONPath: no).
pub fn check_bounds(what: &str, source: &str, raw_strings: bool) -> Result<(), String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "{what} is {} bytes long; at most {MAX_EXPRESSION_BYTES} bytes are allowed",
            source.len()
        ));
    }
    let shape = shape(source, raw_strings);
    if shape.nesting > MAX_EXPRESSION_NESTING {
        return Err(format!(
            "{what} nests brackets {} levels deep; at most {MAX_EXPRESSION_NESTING} levels are allowed",
            shape.nesting
        ));
    }
    if shape.operators > MAX_EXPRESSION_OPERATORS {
        return Err(format!(
            "{what} has {} operators (terms joined by `||`, `&&`, `==`, `+`, `.`, `[`, …); at most {MAX_EXPRESSION_OPERATORS} are allowed",
            shape.operators
        ));
    }
    Ok(())
}

/// One linear pass over the text: strings are skipped, brackets and operators counted.
fn shape(source: &str, raw_strings: bool) -> Shape {
    let bytes = source.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (mut depth, mut nesting, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' => {
                i = skip_string(bytes, i, raw_strings && is_raw_prefix(bytes, i));
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                nesting = nesting.max(depth);
                if b == b'[' {
                    operators += 1;
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'|' | b'&' | b'=' if bytes.get(i + 1) == Some(&b) => {
                operators += 1;
                i += 2;
                continue;
            }
            b'!' | b'<' | b'>' if bytes.get(i + 1) == Some(&b'=') => {
                operators += 1;
                i += 2;
                continue;
            }
            b'!' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'?' => operators += 1,
            b'.' if bytes
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_') =>
            {
                operators += 1;
            }
            b'i' if bytes.get(i + 1) == Some(&b'n')
                && (i == 0 || !ident(bytes[i - 1]))
                && bytes.get(i + 2).is_none_or(|n| !ident(*n)) =>
            {
                operators += 1;
                i += 2;
                continue;
            }
            _ if ident(b) => {
                // Skip the rest of the word, so `in` inside `index` is not an operator.
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Shape {
        bytes: bytes.len(),
        nesting,
        operators,
    }
}

/// Whether the quote at `quote` opens a CEL raw string (`r'…'`, `rb'…'`, `br'…'`), in which a
/// backslash escapes nothing.
fn is_raw_prefix(bytes: &[u8], quote: usize) -> bool {
    let mut start = quote;
    while start > 0 && quote - start < 2 && matches!(bytes[start - 1], b'r' | b'R' | b'b' | b'B') {
        start -= 1;
    }
    let word_boundary =
        start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
    word_boundary && bytes[start..quote].iter().any(|b| matches!(b, b'r' | b'R'))
}

/// The index after the string literal opening at `open` (single or triple quotes).
fn skip_string(bytes: &[u8], open: usize, raw: bool) -> usize {
    let quote = bytes[open];
    let triple = bytes.get(open + 1) == Some(&quote) && bytes.get(open + 2) == Some(&quote);
    let mut i = open + if triple { 3 } else { 1 };
    while i < bytes.len() {
        if bytes[i] == b'\\' && !raw {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if !triple {
                return i + 1;
            }
            if bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
                return i + 3;
            }
        }
        i += 1;
    }
    bytes.len()
}

/// What the parser thread hands back.
struct Compiled {
    program: cel::Program,
    variables: Vec<String>,
    depth: usize,
}

impl Expression {
    /// Checks the bounds, then compiles `source`; the error is the bound that was exceeded or
    /// CEL's message.
    pub fn compile(source: &str) -> Result<Self, String> {
        check_bounds("the condition", source, true)?;
        let compiled = parse_isolated(source)?;
        Ok(Self {
            source: source.to_owned(),
            program: Arc::new(compiled.program),
            variables: compiled.variables.into(),
            depth: compiled.depth,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the expression reads.
    pub fn variables(&self) -> Vec<String> {
        self.variables.to_vec()
    }

    /// The depth of the expression's syntax tree.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Evaluates to a boolean; anything else (or an evaluation error) is an error message.
    pub fn evaluate(&self, variables: &BTreeMap<String, Value>) -> Result<bool, String> {
        let evaluate = || {
            catch_unwind(AssertUnwindSafe(|| {
                STANDARD.with(|standard| self.evaluate_in(standard, variables))
            }))
            .unwrap_or_else(|_| Err(format!("`{}` could not be evaluated", self.source)))
        };
        if self.depth <= INLINE_EVAL_DEPTH {
            return evaluate();
        }
        // A deep tree (a long chain of `+`, say) recurses once per level: give it a stack of its
        // own rather than risk the caller's.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("tokenflow-cel-eval".to_owned())
                .stack_size(EVAL_STACK_BYTES)
                .spawn_scoped(scope, evaluate)
                .map_err(|err| format!("`{}` could not be evaluated: {err}", self.source))?
                .join()
                .unwrap_or_else(|_| Err(format!("`{}` could not be evaluated", self.source)))
        })
    }

    fn evaluate_in(
        &self,
        standard: &cel::Context<'static, 'static>,
        variables: &BTreeMap<String, Value>,
    ) -> Result<bool, String> {
        let mut context = standard.new_inner_scope();
        for name in self.variables.iter() {
            let value = variables.get(name).cloned().unwrap_or(Value::Null);
            context
                .add_variable(name.clone(), to_cel(&value))
                .map_err(|err| {
                    format!("variable `{name}` cannot be used in an expression: {err}")
                })?;
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!(
                "`{}` evaluated to a {}, not a boolean",
                self.source,
                other.type_of()
            )),
            Err(err) => Err(format!(
                "`{}` failed: {}",
                self.source,
                describe(&err, &self.source)
            )),
        }
    }
}

/// What went wrong in an evaluation, naming types but never values: a variable may hold a
/// secret (docs/security.md), and CEL's own messages print the values they were given, whole.
#[allow(deprecated)] // the deprecated variants hold values too
fn describe(err: &cel::ExecutionError, source: &str) -> String {
    use cel::ExecutionError as E;
    let kind = |value: &cel::Value| value.type_of().to_string();
    match err {
        E::UnsupportedTargetType { target } => format!("a {} cannot be used here", kind(target)),
        E::NotSupportedAsMethod { method, target } => {
            format!("`{method}` cannot be called on a {}", kind(target))
        }
        E::UnsupportedKeyType(key) => format!("a {} cannot be a map key", kind(key)),
        E::ValuesNotComparable(a, b) => {
            format!("a {} cannot be compared to a {}", kind(a), kind(b))
        }
        E::UnsupportedUnaryOperator(op, value) => {
            format!("`{op}` does not apply to a {}", kind(value))
        }
        E::UnsupportedBinaryOperator(op, a, b) => {
            format!("`{op}` does not apply to a {} and a {}", kind(a), kind(b))
        }
        E::UnsupportedMapIndex(index) | E::UnsupportedListIndex(index) => {
            format!("a {} cannot be an index", kind(index))
        }
        E::UnsupportedIndex(index, target) => {
            format!("a {} cannot index a {}", kind(index), kind(target))
        }
        E::Overflow(op, a, b) => format!("`{op}` overflowed on a {} and a {}", kind(a), kind(b)),
        E::DivisionByZero(_) => "division by zero".to_owned(),
        E::RemainderByZero(_) => "remainder by zero".to_owned(),
        E::IndexOutOfBounds(_) => "an index is out of bounds".to_owned(),
        E::DuplicateKey(key) => format!("a map repeats a {} key", kind(key)),
        // A key looked up with a value (`body[token]`) is not shown; one written in the
        // expression is.
        E::NoSuchKey(key) if source.contains(key.as_str()) => format!("no such key: {key}"),
        E::NoSuchKey(_) => "no such key".to_owned(),
        E::FunctionError { function, .. } => format!("`{function}` failed on its arguments"),
        E::InternalError(_) => "an internal error of the CEL evaluator".to_owned(),
        E::UnsupportedFunctionCallIdentifierType(_) | E::UnsupportedFieldsConstruction(_) => {
            "an unsupported construct".to_owned()
        }
        // The rest name only types, counts, functions and references written in the expression.
        E::InvalidArgumentCount { .. }
        | E::UnexpectedType { .. }
        | E::NoSuchOverload(_)
        | E::UndeclaredReference(_)
        | E::MissingArgumentOrTarget => err.to_string(),
        _ => "the expression could not be evaluated".to_owned(),
    }
}

/// Parses `source` on a thread of its own with a large stack, turning a parser panic into an
/// error. Callers check the bounds first: a stack overflow cannot be caught.
fn parse_isolated(source: &str) -> Result<Compiled, String> {
    let text = source.to_owned();
    let parsed = std::thread::Builder::new()
        .name("tokenflow-cel-parse".to_owned())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || catch_unwind(move || compile_on_this_thread(&text)))
        .map_err(|err| format!("the condition could not be parsed: {err}"))?
        .join();
    match parsed {
        Ok(Ok(result)) => result,
        // The parser panicked: the text is what made it fail, so it is a bad condition.
        Ok(Err(_)) | Err(_) => Err("the CEL parser failed on this condition".to_owned()),
    }
}

/// Parses on the current thread (the big-stack parser thread) and measures the result.
fn compile_on_this_thread(source: &str) -> Result<Compiled, String> {
    let program = cel::Program::compile(source).map_err(|err| {
        // CEL prints the source with a caret on following lines; keep the first line.
        let text = err.to_string();
        text.lines()
            .next()
            .unwrap_or("invalid expression")
            .trim_start_matches("ERROR: ")
            .to_owned()
    })?;
    let variables = program
        .references()
        .variables()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let nesting = comprehension_nesting(program.expression());
    if nesting > MAX_COMPREHENSION_NESTING {
        return Err(format!(
            "the condition nests comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) {nesting} deep; at most {MAX_COMPREHENSION_NESTING} level is allowed"
        ));
    }
    let depth = syntax_depth(program.expression());
    Ok(Compiled {
        program,
        variables,
        depth,
    })
}

/// The depth of a syntax tree, measured without recursion.
fn syntax_depth(root: &cel::IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        stack.extend(children(node).into_iter().map(|child| (child, depth + 1)));
    }
    deepest
}

/// The direct sub-expressions of a node.
/// How deep comprehensions sit in the bodies (condition and step) of other comprehensions; one
/// in the list a comprehension iterates over, or in its result, runs once and adds no level.
fn comprehension_nesting(root: &cel::IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 0usize)];
    while let Some((node, level)) = stack.pop() {
        if let Expr::Comprehension(comprehension) = &node.expr {
            let inner = level + 1;
            deepest = deepest.max(inner);
            stack.push((&comprehension.iter_range, level));
            stack.push((&comprehension.accu_init, level));
            stack.push((&comprehension.result, level));
            stack.push((&comprehension.loop_cond, inner));
            stack.push((&comprehension.loop_step, inner));
        } else {
            stack.extend(children(node).into_iter().map(|child| (child, level)));
        }
    }
    deepest
}

fn children(node: &cel::IdedExpr) -> Vec<&cel::IdedExpr> {
    match &node.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(comprehension) => vec![
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entry_children(&map.entries),
        Expr::Struct(object) => entry_children(&object.entries),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&cel::IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(pair) => vec![&pair.key, &pair.value],
            EntryExpr::StructField(field) => vec![&field.value],
        })
        .collect()
}

/// JSON to CEL, with whole numbers as CEL `int` (not `uint`), so `status + 1` and `code == -1`
/// mix freely with integer literals.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(s.clone().into()),
        Value::Array(items) => {
            cel::Value::List(items.iter().map(to_cel).collect::<Vec<_>>().into())
        }
        Value::Object(map) => {
            let map: std::collections::HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn evaluation_errors_name_types_never_the_values_of_variables() {
        // Found by the fuzz tests: CEL's messages print the operands, a secret variable's too.
        let token = vars(&[
            ("token", "s3cr3t-value".into()),
            ("body", serde_json::json!({})),
        ]);
        for source in [
            "b'x' + token",
            "token",
            "token < 1",
            "body[token] == 1",
            "int(token) == 1",
        ] {
            let err = Expression::compile(source)
                .unwrap()
                .evaluate(&token)
                .unwrap_err();
            assert!(!err.contains("s3cr3t-value"), "{source}: {err}");
        }
        let err = Expression::compile("b'x' + token")
            .unwrap()
            .evaluate(&token)
            .unwrap_err();
        assert!(
            err.contains("`+` does not apply to a bytes and a string")
                || err.contains("a bytes and a string"),
            "{err}"
        );
        let err = Expression::compile("token")
            .unwrap()
            .evaluate(&token)
            .unwrap_err();
        assert!(
            err.ends_with("evaluated to a string, not a boolean"),
            "{err}"
        );
    }

    #[test]
    fn comprehensions_nested_in_comprehensions_are_refused() {
        // Found by the fuzz tests: nested `map`s over literal lists multiply, so a few hundred
        // bytes ran for minutes and took gigabytes.
        let list = format!("[{}]", vec!["0"; 16].join(", "));
        let nested = format!("size({list}.map(a, {list}.map(b, {list}.map(c, 0)))) > 0");
        let err = Expression::compile(&nested).unwrap_err();
        assert!(
            err.contains("nests comprehensions") && err.contains("3 deep"),
            "{err}"
        );
        let err = Expression::compile("items.exists(i, i.tags.exists(t, t == 'x'))").unwrap_err();
        assert!(err.contains("2 deep"), "{err}");
        // Chained and consumed ones run one after another: allowed.
        for source in [
            "items.map(i, i.n).filter(n, n > 1).all(n, n < 9)",
            "size(items.filter(i, i.n > 1)) == size(items.map(i, i))",
        ] {
            let expr = Expression::compile(source).unwrap();
            let v = vars(&[("items", serde_json::json!([{"n": 2}, {"n": 3}]))]);
            assert_eq!(expr.evaluate(&v), Ok(true), "{source}");
        }
    }

    #[test]
    fn evaluates_over_variables() {
        let expr = Expression::compile("status == 0 && http_status < 300").unwrap();
        let mut names = expr.variables();
        names.sort();
        assert_eq!(names, ["http_status", "status"]);
        let ok = vars(&[("status", 0.into()), ("http_status", 200.into())]);
        assert_eq!(expr.evaluate(&ok), Ok(true));
        let bad = vars(&[("status", 0.into()), ("http_status", 404.into())]);
        assert_eq!(expr.evaluate(&bad), Ok(false));
    }

    #[test]
    fn json_numbers_are_ints_so_arithmetic_and_negative_codes_work() {
        let expr = Expression::compile("status + 1 == 0 && list[0] == 2 && obj.n > 1").unwrap();
        let v = vars(&[
            ("status", (-1).into()),
            ("list", serde_json::json!([2])),
            ("obj", serde_json::json!({"n": 5})),
        ]);
        assert_eq!(expr.evaluate(&v), Ok(true));
    }

    #[test]
    fn json_members_and_strings_work() {
        let expr = Expression::compile("profile.name == 'Alice' && size(token) > 3").unwrap();
        let v = vars(&[
            ("profile", serde_json::json!({"name": "Alice"})),
            ("token", "abcd".into()),
        ]);
        assert_eq!(expr.evaluate(&v), Ok(true));
    }

    fn terms(term: &str, joiner: &str, n: usize) -> String {
        vec![term; n].join(joiner)
    }

    #[test]
    fn conditions_over_the_size_nesting_or_operator_limits_are_refused_before_parsing() {
        let long = Expression::compile(&terms("x == 1", " || ", 10_000)).unwrap_err();
        assert_eq!(
            long,
            "the condition is 99996 bytes long; at most 4096 bytes are allowed"
        );
        let parens = Expression::compile(&"(".repeat(100_000)).unwrap_err();
        assert!(parens.contains("at most 4096 bytes"), "{parens}");
        let deep = format!("{}x{} == 1", "(".repeat(33), ")".repeat(33));
        assert_eq!(
            Expression::compile(&deep).unwrap_err(),
            "the condition nests brackets 33 levels deep; at most 32 levels are allowed"
        );
        let many = terms("x", "||", 258);
        assert!(many.len() < MAX_EXPRESSION_BYTES);
        assert_eq!(
            Expression::compile(&many).unwrap_err(),
            "the condition has 257 operators (terms joined by `||`, `&&`, `==`, `+`, `.`, `[`, …); at most 256 are allowed"
        );
        let index = format!("x{} == 1", "[0]".repeat(257));
        assert!(
            Expression::compile(&index)
                .unwrap_err()
                .contains("258 operators")
        );
    }

    #[test]
    fn strings_words_and_numbers_do_not_count_as_operators() {
        let shape = shape(
            r#"name == 'a||b(((' && r'\' != "x\"+y" && index in [1.5, 2]"#,
            true,
        );
        assert_eq!(shape.nesting, 1);
        // ==, &&, !=, &&, in, [
        assert_eq!(shape.operators, 6);
        // A raw string's backslash escapes nothing, so the quote after it ends the string.
        assert_eq!(super::shape(r"r'\' + x + y", true).operators, 2);
        assert_eq!(super::shape("'''a'b''' + x", true).operators, 1);
    }

    #[test]
    fn conditions_at_the_limits_compile_and_evaluate_on_an_ordinary_thread() {
        let x = vars(&[("x", 1.into())]);
        // 32 levels of parentheses.
        let deep =
            Expression::compile(&format!("{}x{} == 1", "(".repeat(32), ")".repeat(32))).unwrap();
        assert_eq!(deep.evaluate(&x), Ok(true));
        // 255 `+` and one `==`: a syntax tree over 250 levels deep, evaluated on a thread with
        // its own stack.
        let sum = Expression::compile(&format!("{} == 256", terms("x", " + ", 256))).unwrap();
        assert!(sum.depth() > 250, "{}", sum.depth());
        assert_eq!(sum.evaluate(&x), Ok(true));
        // `||` chains are balanced by the parser: shallow.
        let or = Expression::compile(&terms("x == 2", " || ", 128)).unwrap();
        assert!(or.depth() <= INLINE_EVAL_DEPTH, "{}", or.depth());
        assert_eq!(or.evaluate(&x), Ok(false));
        // 255 nested lists indexed 255 times.
        let mut nested = Value::from(1);
        for _ in 0..255 {
            nested = Value::Array(vec![nested]);
        }
        let index = Expression::compile(&format!("x{} == 1", "[0]".repeat(255))).unwrap();
        assert_eq!(index.evaluate(&vars(&[("x", nested)])), Ok(true));
    }

    #[test]
    fn a_parser_that_fails_on_its_own_thread_gives_an_error_not_a_crash() {
        // Past the bounds on purpose: the parser sees 100,000 `(` directly.
        let err = parse_isolated(&"(".repeat(100_000)).err().unwrap();
        assert!(!err.is_empty());
    }

    #[test]
    fn syntax_errors_and_non_booleans_are_reported() {
        assert!(
            Expression::compile("status ==")
                .unwrap_err()
                .contains("Syntax error")
        );
        let expr = Expression::compile("status + 1").unwrap();
        assert!(
            expr.evaluate(&vars(&[("status", 1.into())]))
                .unwrap_err()
                .contains("not a boolean")
        );
        let expr = Expression::compile("missing.x == 1").unwrap();
        assert!(expr.evaluate(&vars(&[])).unwrap_err().contains("failed"));
    }
}
