//! Arithmetic expressions over named variables, parsed once and evaluated without allocation.
//!
//! Grammar (usual precedence, lowest first):
//!
//! ```text
//! expr    := or
//! or      := and ( "||" and )*
//! and     := cmp ( "&&" cmp )*
//! cmp     := sum ( ("<" | "<=" | ">" | ">=" | "==" | "!=") sum )?
//! sum     := product ( ("+" | "-") product )*
//! product := unary ( ("*" | "/") unary )*
//! unary   := ("-" | "!") unary | power
//! power   := atom ( "^" unary )?
//! atom    := number | name | name "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//!
//! Comparisons and logic yield 1.0 (true) or 0.0 (false), so `-0.1 * (a < 0)` is −0.1 exactly
//! when `a` is negative. Functions: `abs sqrt exp ln tanh sign` (one argument), `min max`
//! (two), `clamp(x, lo, hi)`. Constant: `pi`.
//!
//! An expression compiles to a postfix program; evaluation runs it on a fixed-size stack.

use std::fmt;

/// Deepest evaluation stack an expression may need.
pub const MAX_STACK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Const(f32),
    Var(u16),
    Neg,
    Not,
    Bin(Bin),
    F1(F1),
    F2(F2),
    Clamp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum F1 {
    Abs,
    Sqrt,
    Exp,
    Ln,
    Tanh,
    Sign,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum F2 {
    Min,
    Max,
}

/// A parse error, with the byte offset in the source where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.pos + 1, self.message)
    }
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub struct Expr {
    source: String,
    program: Vec<Op>,
}

impl Expr {
    /// Parses `source`; `vars` are the names a variable may take, and `Var(i)` reads `vars[i]`'s
    /// value from the slice given to [`Expr::eval`].
    pub fn parse(source: &str, vars: &[&str]) -> Result<Expr, ExprError> {
        let tokens = lex(source)?;
        let mut p = Parser { tokens, at: 0, vars, program: Vec::new(), src: source };
        p.or()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(ExprError { pos: t.pos, message: format!("unexpected `{}`", t.text(source)) });
        }
        let expr = Expr { source: source.to_string(), program: p.program };
        let depth = expr.max_depth();
        if depth > MAX_STACK {
            return Err(ExprError {
                pos: 0,
                message: format!("expression nests {depth} deep; at most {MAX_STACK} is supported"),
            });
        }
        Ok(expr)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Indices (into the `vars` given to `parse`) of the variables this expression reads.
    pub fn variables(&self) -> impl Iterator<Item = usize> + '_ {
        self.program.iter().filter_map(|op| match op {
            Op::Var(i) => Some(*i as usize),
            _ => None,
        })
    }

    fn max_depth(&self) -> usize {
        let (mut d, mut max) = (0usize, 0usize);
        for op in &self.program {
            match op {
                Op::Const(_) | Op::Var(_) => d += 1,
                Op::Neg | Op::Not | Op::F1(_) => {}
                Op::Bin(_) | Op::F2(_) => d -= 1,
                Op::Clamp => d -= 2,
            }
            max = max.max(d);
        }
        max
    }

    /// Evaluates with `values[i]` as the value of variable `i`. Never allocates.
    pub fn eval(&self, values: &[f32]) -> f32 {
        let mut stack = [0.0f32; MAX_STACK];
        let mut sp = 0usize;
        for op in &self.program {
            match *op {
                Op::Const(c) => {
                    stack[sp] = c;
                    sp += 1;
                }
                Op::Var(i) => {
                    stack[sp] = values[i as usize];
                    sp += 1;
                }
                Op::Neg => stack[sp - 1] = -stack[sp - 1],
                Op::Not => stack[sp - 1] = (stack[sp - 1] == 0.0) as u8 as f32,
                Op::F1(f) => {
                    let x = stack[sp - 1];
                    stack[sp - 1] = match f {
                        F1::Abs => x.abs(),
                        F1::Sqrt => x.sqrt(),
                        F1::Exp => x.exp(),
                        F1::Ln => x.ln(),
                        F1::Tanh => x.tanh(),
                        F1::Sign => {
                            if x > 0.0 {
                                1.0
                            } else if x < 0.0 {
                                -1.0
                            } else {
                                0.0
                            }
                        }
                    };
                }
                Op::F2(f) => {
                    sp -= 1;
                    let (x, y) = (stack[sp - 1], stack[sp]);
                    stack[sp - 1] = match f {
                        F2::Min => x.min(y),
                        F2::Max => x.max(y),
                    };
                }
                Op::Clamp => {
                    sp -= 2;
                    let (x, lo, hi) = (stack[sp - 1], stack[sp], stack[sp + 1]);
                    stack[sp - 1] = x.max(lo).min(hi);
                }
                Op::Bin(b) => {
                    sp -= 1;
                    let (x, y) = (stack[sp - 1], stack[sp]);
                    let t = |c: bool| c as u8 as f32;
                    stack[sp - 1] = match b {
                        Bin::Add => x + y,
                        Bin::Sub => x - y,
                        Bin::Mul => x * y,
                        Bin::Div => x / y,
                        Bin::Pow => x.powf(y),
                        Bin::Lt => t(x < y),
                        Bin::Le => t(x <= y),
                        Bin::Gt => t(x > y),
                        Bin::Ge => t(x >= y),
                        Bin::Eq => t(x == y),
                        Bin::Ne => t(x != y),
                        Bin::And => t(x != 0.0 && y != 0.0),
                        Bin::Or => t(x != 0.0 || y != 0.0),
                    };
                }
            }
        }
        stack[0]
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Num(f32),
    Name,
    Sym(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Token {
    tok: Tok,
    pos: usize,
    len: usize,
}

impl Token {
    fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.pos..self.pos + self.len]
    }
}

const SYMBOLS: [&str; 18] =
    ["<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "^", "(", ")", ",", "!", "="];

fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text = &src[start..i];
            let v: f32 = text
                .parse()
                .map_err(|_| ExprError { pos: start, message: format!("`{text}` is not a number") })?;
            out.push(Token { tok: Tok::Num(v), pos: start, len: i - start });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push(Token { tok: Tok::Name, pos: start, len: i - start });
        } else if let Some(s) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            if *s == "=" {
                return Err(ExprError {
                    pos: i,
                    message: "`=` is not an operator; use `==` to compare".into(),
                });
            }
            out.push(Token { tok: Tok::Sym(s), pos: i, len: s.len() });
            i += s.len();
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(ExprError { pos: i, message: format!("unexpected character `{ch}`") });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    vars: &'a [&'a str],
    program: Vec<Op>,
    src: &'a str,
}

impl<'a> Parser<'a> {
    fn peek_sym(&self) -> Option<&'static str> {
        match self.tokens.get(self.at) {
            Some(Token { tok: Tok::Sym(s), .. }) => Some(s),
            _ => None,
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.peek_sym() == Some(s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn here(&self) -> usize {
        self.tokens.get(self.at).map_or(self.src.len(), |t| t.pos)
    }

    fn expect(&mut self, s: &str) -> Result<(), ExprError> {
        if self.eat(s) {
            Ok(())
        } else {
            let found = if self.at < self.tokens.len() { "something else" } else { "the end" };
            Err(ExprError { pos: self.here(), message: format!("expected `{s}`, found {found}") })
        }
    }

    fn or(&mut self) -> Result<(), ExprError> {
        self.and()?;
        while self.eat("||") {
            self.and()?;
            self.program.push(Op::Bin(Bin::Or));
        }
        Ok(())
    }

    fn and(&mut self) -> Result<(), ExprError> {
        self.cmp()?;
        while self.eat("&&") {
            self.cmp()?;
            self.program.push(Op::Bin(Bin::And));
        }
        Ok(())
    }

    fn cmp(&mut self) -> Result<(), ExprError> {
        self.sum()?;
        let op = match self.peek_sym() {
            Some("<") => Bin::Lt,
            Some("<=") => Bin::Le,
            Some(">") => Bin::Gt,
            Some(">=") => Bin::Ge,
            Some("==") => Bin::Eq,
            Some("!=") => Bin::Ne,
            _ => return Ok(()),
        };
        self.at += 1;
        self.sum()?;
        self.program.push(Op::Bin(op));
        Ok(())
    }

    fn sum(&mut self) -> Result<(), ExprError> {
        self.product()?;
        loop {
            let op = match self.peek_sym() {
                Some("+") => Bin::Add,
                Some("-") => Bin::Sub,
                _ => return Ok(()),
            };
            self.at += 1;
            self.product()?;
            self.program.push(Op::Bin(op));
        }
    }

    fn product(&mut self) -> Result<(), ExprError> {
        self.unary()?;
        loop {
            let op = match self.peek_sym() {
                Some("*") => Bin::Mul,
                Some("/") => Bin::Div,
                _ => return Ok(()),
            };
            self.at += 1;
            self.unary()?;
            self.program.push(Op::Bin(op));
        }
    }

    fn unary(&mut self) -> Result<(), ExprError> {
        if self.eat("-") {
            self.unary()?;
            self.program.push(Op::Neg);
            Ok(())
        } else if self.eat("!") {
            self.unary()?;
            self.program.push(Op::Not);
            Ok(())
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<(), ExprError> {
        self.atom()?;
        if self.eat("^") {
            self.unary()?;
            self.program.push(Op::Bin(Bin::Pow));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), ExprError> {
        let Some(&t) = self.tokens.get(self.at) else {
            return Err(ExprError { pos: self.src.len(), message: "expression ends too early".into() });
        };
        self.at += 1;
        match t.tok {
            Tok::Num(v) => self.program.push(Op::Const(v)),
            Tok::Sym("(") => {
                self.or()?;
                self.expect(")")?;
            }
            Tok::Sym(s) => {
                return Err(ExprError { pos: t.pos, message: format!("unexpected `{s}`") });
            }
            Tok::Name => {
                let name = t.text(self.src);
                if self.peek_sym() == Some("(") {
                    self.at += 1;
                    self.call(name, t.pos)?;
                } else if let Some(i) = self.vars.iter().position(|v| *v == name) {
                    self.program.push(Op::Var(i as u16));
                } else if name == "pi" {
                    self.program.push(Op::Const(std::f32::consts::PI));
                } else {
                    return Err(ExprError {
                        pos: t.pos,
                        message: format!("unknown name `{name}`; known: {}", self.vars.join(", ")),
                    });
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, name: &str, pos: usize) -> Result<(), ExprError> {
        let mut argc = 0;
        if !self.eat(")") {
            loop {
                self.or()?;
                argc += 1;
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    let found = if self.at < self.tokens.len() { "something else" } else { "the end" };
                    return Err(ExprError {
                        pos: self.here(),
                        message: format!("expected `)` (or `,` before another argument), found {found}"),
                    });
                }
            }
        }
        let (op, want) = match name {
            "abs" => (Op::F1(F1::Abs), 1),
            "sqrt" => (Op::F1(F1::Sqrt), 1),
            "exp" => (Op::F1(F1::Exp), 1),
            "ln" | "log" => (Op::F1(F1::Ln), 1),
            "tanh" => (Op::F1(F1::Tanh), 1),
            "sign" => (Op::F1(F1::Sign), 1),
            "min" => (Op::F2(F2::Min), 2),
            "max" => (Op::F2(F2::Max), 2),
            "clamp" => (Op::Clamp, 3),
            _ => {
                return Err(ExprError {
                    pos,
                    message: format!(
                        "unknown function `{name}`; known: abs, sqrt, exp, ln, tanh, sign, min, max, clamp"
                    ),
                })
            }
        };
        if argc != want {
            return Err(ExprError { pos, message: format!("`{name}` takes {want} argument(s), got {argc}") });
        }
        self.program.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, vals: &[f32]) -> f32 {
        Expr::parse(src, &["x", "a", "a_prev"]).unwrap().eval(vals)
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(ev("1 + 2 * 3", &[0.0; 3]), 7.0);
        assert_eq!(ev("(1 + 2) * 3", &[0.0; 3]), 9.0);
        assert_eq!(ev("-2^2", &[0.0; 3]), -4.0);
        assert_eq!(ev("2^-1", &[0.0; 3]), 0.5);
        assert!((ev("-abs(x)/2.4", &[-1.2, 0.0, 0.0]) + 0.5).abs() < 1e-7);
        assert_eq!(ev("1e-1 * 10", &[0.0; 3]), 1.0);
    }

    #[test]
    fn comparisons_and_logic_give_indicators() {
        assert_eq!(ev("-0.1 * (a < 0)", &[0.0, -1.0, 0.0]), -0.1);
        assert_eq!(ev("-0.1 * (a < 0)", &[0.0, 1.0, 0.0]), 0.0);
        assert_eq!(ev("a > 0 && a_prev < 0", &[0.0, 1.0, -1.0]), 1.0);
        assert_eq!(ev("a > 0 || a_prev > 0", &[0.0, -1.0, -1.0]), 0.0);
        assert_eq!(ev("!(x == 0)", &[0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn functions() {
        assert_eq!(ev("clamp(x, -1, 1)", &[3.0, 0.0, 0.0]), 1.0);
        assert_eq!(ev("max(x, a) - min(x, a)", &[3.0, 1.0, 0.0]), 2.0);
        assert_eq!(ev("sign(x) * sqrt(4)", &[-3.0, 0.0, 0.0]), -2.0);
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = Expr::parse("-abs(y)/2.4", &["x"]).unwrap_err();
        assert!(e.message.contains("unknown name `y`"), "{e}");
        assert_eq!(e.pos, 5);
        let e = Expr::parse("-abs(x/2.4", &["x"]).unwrap_err();
        assert!(e.message.contains("expected `)`"), "{e}");
        let e = Expr::parse("x = 1", &["x"]).unwrap_err();
        assert!(e.message.contains("=="), "{e}");
        let e = Expr::parse("foo(x)", &["x"]).unwrap_err();
        assert!(e.message.contains("unknown function"), "{e}");
        let e = Expr::parse("min(x)", &["x"]).unwrap_err();
        assert!(e.message.contains("takes 2"), "{e}");
        let e = Expr::parse("x $ 2", &["x"]).unwrap_err();
        assert!(e.message.contains("unexpected character"), "{e}");
        let e = Expr::parse("", &["x"]).unwrap_err();
        assert!(e.message.contains("ends too early"), "{e}");
        let e = Expr::parse("x 2", &["x"]).unwrap_err();
        assert!(e.message.contains("unexpected"), "{e}");
    }
}
