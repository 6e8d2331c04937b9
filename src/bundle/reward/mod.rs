//! The add-on reward `r_R(s, a, s')`: named terms, each an [`Expr`] over the robot's signals
//! after the step, the action taken and the previous action. Parsed once when the bundle loads;
//! evaluated on the control path without allocation, each term reported separately.

pub mod expr;

pub use expr::{Expr, ExprError};

/// The names an expression may use, in the order of the value vector given to it:
/// the signals, then each action dimension `name` and `name_prev`; with a single action
/// dimension also the aliases `a` and `a_prev`.
#[derive(Clone, Debug)]
pub struct Variables {
    names: Vec<String>,
    n_signals: usize,
    n_actions: usize,
}

impl Variables {
    pub fn new(signals: &[String], actions: &[String]) -> Self {
        let mut names: Vec<String> = signals.to_vec();
        for a in actions {
            names.push(a.clone());
        }
        for a in actions {
            names.push(format!("{a}_prev"));
        }
        if actions.len() == 1 {
            names.push("a".into());
            names.push("a_prev".into());
        }
        Variables { names, n_signals: signals.len(), n_actions: actions.len() }
    }

    /// Whether variable `i` is a previous command (`<command>_prev` or `a_prev`).
    pub fn is_prev(&self, i: usize) -> bool {
        let (s, n) = (self.n_signals, self.n_actions);
        (s + n..s + 2 * n).contains(&i) || (n == 1 && i == s + 3)
    }

    pub fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Writes the value vector for one step into `out` (length [`Variables::len`]).
    pub fn fill(&self, signals: &[f32], action: &[f32], prev_action: &[f32], out: &mut [f32]) {
        let (s, n) = (self.n_signals, self.n_actions);
        out[..s].copy_from_slice(signals);
        out[s..s + n].copy_from_slice(action);
        out[s + n..s + 2 * n].copy_from_slice(prev_action);
        if n == 1 {
            out[s + 2] = action[0];
            out[s + 3] = prev_action[0];
        }
    }
}

/// One named expression, e.g. the add-on term `centre = -abs(x)/2.4`.
#[derive(Clone, Debug)]
pub struct NamedExpr {
    pub name: String,
    pub expr: Expr,
}

/// `r_R = Σ_terms term(values)`.
#[derive(Clone, Debug)]
pub struct AddonReward {
    pub terms: Vec<NamedExpr>,
}

impl AddonReward {
    /// Evaluates every term into `terms_out` and returns their sum.
    pub fn eval(&self, values: &[f32], terms_out: &mut [f32]) -> f32 {
        let mut total = 0.0;
        for (t, out) in self.terms.iter().zip(terms_out.iter_mut()) {
            *out = t.expr.eval(values);
            total += *out;
        }
        total
    }

    pub fn term_names(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.name.as_str())
    }
}
