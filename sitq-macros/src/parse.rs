//! Parsing the attribute's options (the fn's signature: `signature.rs`).
//!
//! Every error points at the offending token. Independent errors are combined
//! so one build shows them all.

use std::time::Duration;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprCall, ExprLit, ExprUnary, Ident, Lit, LitInt, LitStr, Token, UnOp};

use crate::duration;

/// The options of `#[sitq::task(...)]`, all optional.
#[derive(Default)]
pub(crate) struct Options {
    pub name: Option<LitStr>,
    pub queue: Option<LitStr>,
    pub priority: Option<i32>,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub backoff: Option<Backoff>,
    /// `unique` (a flag) or `unique_for`: unique by arguments.
    pub unique: bool,
    pub unique_for: Option<Duration>,
    pub cron: Option<Cron>,
}

/// `cron = "..."` with its `tz` and `catch_up`, all checked.
pub(crate) struct Cron {
    pub expression: LitStr,
    /// The IANA zone; `"UTC"` when not given.
    pub zone: String,
    /// `Latest`, `None` or `All`: the `CatchUp` variant.
    pub catch_up: Ident,
}

/// The retry delay set with `backoff = ...`.
pub(crate) enum Backoff {
    Exponential { base: Duration, max: Duration },
    Fixed(Duration),
}

/// The cap of `backoff = "<base>"`, matching the runtime's default backoff.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// An option's key.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Key {
    Name,
    Queue,
    Priority,
    MaxAttempts,
    Timeout,
    Backoff,
    Unique,
    UniqueFor,
    Cron,
    Tz,
    CatchUp,
}

impl Key {
    const ALL: [Key; 11] = [
        Key::Name,
        Key::Queue,
        Key::Priority,
        Key::MaxAttempts,
        Key::Timeout,
        Key::Backoff,
        Key::Unique,
        Key::UniqueFor,
        Key::Cron,
        Key::Tz,
        Key::CatchUp,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Queue => "queue",
            Key::Priority => "priority",
            Key::MaxAttempts => "max_attempts",
            Key::Timeout => "timeout",
            Key::Backoff => "backoff",
            Key::Unique => "unique",
            Key::UniqueFor => "unique_for",
            Key::Cron => "cron",
            Key::Tz => "tz",
            Key::CatchUp => "catch_up",
        }
    }

    /// What the value must be.
    fn expected(self) -> &'static str {
        match self {
            Key::Name => "a string literal (the name the task is stored and dispatched under)",
            Key::Queue => "a string literal",
            Key::Priority => "an integer literal (an i32; higher runs first)",
            Key::MaxAttempts => "an integer literal of at least 1",
            Key::Timeout => "a duration string",
            Key::Backoff => {
                "a duration string (exponential from that base, capped at 1h), \
                 `exponential(base, cap)` or `fixed(delay)`"
            }
            Key::Unique => "no value (it is a flag)",
            Key::UniqueFor => "a duration string (how long a succeeded task still blocks its key)",
            Key::Cron => {
                "a cron expression string: five fields (minute hour day-of-month month \
                 day-of-week) or six, seconds first"
            }
            Key::Tz => "an IANA time zone name string",
            Key::CatchUp => "\"latest\", \"none\" or \"all\"",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Key::Name => "`name = \"mail::send\"`",
            Key::Queue => "`queue = \"mail\"`",
            Key::Priority => "`priority = 10`",
            Key::MaxAttempts => "`max_attempts = 5`",
            Key::Timeout => "`timeout = \"30s\"`",
            Key::Backoff => {
                "`backoff = \"1s\"`, `backoff = exponential(\"1s\", \"10m\")` or `backoff = fixed(\"5s\")`"
            }
            Key::Unique => "`unique`",
            Key::UniqueFor => "`unique_for = \"1h\"`",
            Key::Cron => "`cron = \"0 */5 * * * *\"` (every five minutes)",
            Key::Tz => "`tz = \"Europe/Berlin\"`",
            Key::CatchUp => "`catch_up = \"none\"`",
        }
    }
}

/// "`name`, `queue`, ...", for the unknown-option message.
fn known_options() -> String {
    Key::ALL
        .iter()
        .map(|key| format!("`{}`", key.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        let mut seen: Vec<Key> = Vec::new();
        let mut errors = Errors::default();
        let mut schedule = ScheduleOptions::default();
        while !input.is_empty() {
            // `parse_any` so that `type = ...` gets the "unknown option" message.
            let ident = Ident::parse_any(input)?;
            let name = ident.unraw().to_string();
            let Some(key) = Key::ALL.into_iter().find(|key| key.as_str() == name) else {
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "unknown option `{name}`; the options are {}",
                        known_options()
                    ),
                ));
            };
            if key == Key::Unique {
                // A flag: `unique`, never `unique = ...`.
                if input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        ident.span(),
                        "`unique` is a flag and takes no value: write `unique`, and \
                         `unique_for = \"1h\"` for a window after success",
                    ));
                }
                if seen.contains(&key) {
                    errors.push(syn::Error::new(
                        ident.span(),
                        format!("option `{name}` is given twice"),
                    ));
                }
                seen.push(key);
                options.unique = true;
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
                continue;
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("expected `{name} = <value>`, e.g. {}", key.example()),
                ));
            }
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            if seen.contains(&key) {
                errors.push(syn::Error::new(
                    ident.span(),
                    format!("option `{name}` is given twice"),
                ));
            } else {
                seen.push(key);
                let value = ungroup(&value);
                let set = match key {
                    Key::Cron | Key::Tz | Key::CatchUp => schedule.set(key, &ident, value),
                    _ => options.set(key, value),
                };
                if let Err(err) = set {
                    errors.push(err);
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        match schedule.finish() {
            Ok(cron) => options.cron = cron,
            Err(err) => errors.push(err),
        }
        errors.finish()?;
        Ok(options)
    }
}

/// `cron`, `tz` and `catch_up` as given, before they are combined.
#[derive(Default)]
struct ScheduleOptions {
    expression: Option<LitStr>,
    zone: Option<(Ident, String)>,
    catch_up: Option<(Ident, Ident)>,
    /// One of them was given with a bad value (already reported).
    failed: bool,
}

impl ScheduleOptions {
    fn set(&mut self, key: Key, ident: &Ident, value: &Expr) -> syn::Result<()> {
        let result = self.try_set(key, ident, value);
        self.failed |= result.is_err();
        result
    }

    fn try_set(&mut self, key: Key, ident: &Ident, value: &Expr) -> syn::Result<()> {
        let lit = string_literal(value).ok_or_else(|| {
            syn::Error::new_spanned(
                value,
                format!(
                    "`{}` takes {}, e.g. {}",
                    key.as_str(),
                    key.expected(),
                    key.example()
                ),
            )
        })?;
        let text = lit.value();
        match key {
            Key::Cron => {
                crate::cron::check_expression(&text)
                    .map_err(|message| syn::Error::new(lit.span(), message))?;
                self.expression = Some(lit.clone());
            }
            Key::Tz => {
                crate::cron::check_zone(&text)
                    .map_err(|message| syn::Error::new(lit.span(), message))?;
                self.zone = Some((ident.clone(), text));
            }
            _ => {
                let variant = match text.as_str() {
                    "latest" => "Latest",
                    "none" => "None",
                    "all" => "All",
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown catch-up policy {text:?}: use \"latest\" (one run for the \
                                 latest missed tick, the default), \"none\" (skip missed ticks) or \
                                 \"all\" (each missed tick, at most 100)"
                            ),
                        ));
                    }
                };
                self.catch_up = Some((ident.clone(), Ident::new(variant, lit.span())));
            }
        }
        Ok(())
    }

    fn finish(self) -> syn::Result<Option<Cron>> {
        let Some(expression) = self.expression else {
            if self.failed {
                return Ok(None);
            }
            let orphan = self
                .zone
                .map(|(ident, _)| ident)
                .or(self.catch_up.map(|(ident, _)| ident));
            return match orphan {
                Some(ident) => Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "`{ident}` applies to a schedule: add `cron = \"...\"`, e.g. `cron = \"0 */5 * * * *\"`"
                    ),
                )),
                None => Ok(None),
            };
        };
        Ok(Some(Cron {
            expression,
            zone: self.zone.map_or_else(|| "UTC".to_owned(), |(_, zone)| zone),
            catch_up: self.catch_up.map_or_else(
                || Ident::new("Latest", Span::call_site()),
                |(_, variant)| variant,
            ),
        }))
    }
}

impl Options {
    fn set(&mut self, key: Key, value: &Expr) -> syn::Result<()> {
        let wrong_type = || {
            syn::Error::new_spanned(
                value,
                format!(
                    "`{}` takes {}, e.g. {}",
                    key.as_str(),
                    key.expected(),
                    key.example()
                ),
            )
        };
        match key {
            Key::Name | Key::Queue => {
                let lit = string_literal(value).ok_or_else(wrong_type)?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("`{}` must not be empty", key.as_str()),
                    ));
                }
                if key == Key::Name {
                    self.name = Some(lit.clone());
                } else {
                    self.queue = Some(lit.clone());
                }
            }
            Key::Priority => {
                let (negative, lit) = integer_literal(value).ok_or_else(wrong_type)?;
                check_suffix(lit, "i32")?;
                let out_of_range =
                    || syn::Error::new_spanned(value, "`priority` is out of range for i32");
                let magnitude: i64 = lit.base10_parse().map_err(|_| out_of_range())?;
                let signed = if negative { -magnitude } else { magnitude };
                self.priority = Some(i32::try_from(signed).map_err(|_| out_of_range())?);
            }
            Key::MaxAttempts => {
                let (negative, lit) = integer_literal(value).ok_or_else(wrong_type)?;
                check_suffix(lit, "u32")?;
                let at_least_one = || {
                    syn::Error::new_spanned(
                        value,
                        "`max_attempts` must be at least 1 (1 means no retries)",
                    )
                };
                if negative {
                    return Err(at_least_one());
                }
                let attempts: u32 = lit.base10_parse().map_err(|_| {
                    syn::Error::new_spanned(value, "`max_attempts` is out of range for u32")
                })?;
                if attempts == 0 {
                    return Err(at_least_one());
                }
                self.max_attempts = Some(attempts);
            }
            Key::Timeout => {
                let lit = string_literal(value).ok_or_else(wrong_type)?;
                let timeout = parse_duration(lit)?;
                if timeout.is_zero() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`timeout` must be longer than zero; leave it out for no limit",
                    ));
                }
                self.timeout = Some(timeout);
            }
            Key::Backoff => {
                let backoff = parse_backoff(value).map_err(|err| err.unwrap_or_else(wrong_type))?;
                self.backoff = Some(backoff);
            }
            // Handled as a flag by the parser.
            Key::Unique => self.unique = true,
            Key::UniqueFor => {
                let lit = string_literal(value).ok_or_else(wrong_type)?;
                let window = parse_duration(lit)?;
                if window.is_zero() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`unique_for` must be longer than zero; write `unique` alone for \
                         a key that a succeeded task no longer blocks",
                    ));
                }
                self.unique_for = Some(window);
            }
            // Set through `ScheduleOptions`.
            Key::Cron | Key::Tz | Key::CatchUp => {}
        }
        Ok(())
    }
}

/// `Err(None)` when the value has the wrong shape altogether.
fn parse_backoff(value: &Expr) -> Result<Backoff, Option<syn::Error>> {
    if let Some(lit) = string_literal(value) {
        let base = parse_duration(lit).map_err(Some)?;
        if base.is_zero() {
            return Err(Some(syn::Error::new(
                lit.span(),
                "an exponential backoff needs a base longer than zero; use `fixed(\"0s\")` to retry at once",
            )));
        }
        let max = base.max(DEFAULT_BACKOFF_MAX);
        return Ok(Backoff::Exponential { base, max });
    }
    let Expr::Call(ExprCall { func, args, .. }) = value else {
        return Err(None);
    };
    let Expr::Path(path) = ungroup(func) else {
        return Err(None);
    };
    let Some(kind) = path.path.get_ident().map(ToString::to_string) else {
        return Err(None);
    };
    let args: Vec<&Expr> = args.iter().collect();
    match (kind.as_str(), args.as_slice()) {
        ("fixed", [delay]) => {
            let lit = string_literal(delay).ok_or(None)?;
            Ok(Backoff::Fixed(parse_duration(lit).map_err(Some)?))
        }
        ("exponential", [base, max]) => {
            let base_lit = string_literal(base).ok_or(None)?;
            let max_lit = string_literal(max).ok_or(None)?;
            let base = parse_duration(base_lit).map_err(Some)?;
            let max = parse_duration(max_lit).map_err(Some)?;
            if base.is_zero() {
                return Err(Some(syn::Error::new(
                    base_lit.span(),
                    "an exponential backoff needs a base longer than zero; use `fixed(\"0s\")` to retry at once",
                )));
            }
            if max < base {
                return Err(Some(syn::Error::new(
                    max_lit.span(),
                    "the cap of an exponential backoff must not be shorter than its base",
                )));
            }
            Ok(Backoff::Exponential { base, max })
        }
        _ => Err(None),
    }
}

fn parse_duration(lit: &LitStr) -> syn::Result<Duration> {
    duration::parse(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))
}

fn check_suffix(lit: &LitInt, ty: &str) -> syn::Result<()> {
    match lit.suffix() {
        "" => Ok(()),
        suffix if suffix == ty => Ok(()),
        suffix => Err(syn::Error::new(
            lit.span(),
            format!("expected an {ty}, found a literal of type {suffix}; drop the suffix"),
        )),
    }
}

fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        Expr::Paren(paren) => ungroup(&paren.expr),
        expr => expr,
    }
}

fn string_literal(expr: &Expr) -> Option<&LitStr> {
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

/// An integer literal, possibly negated: (negative, literal).
fn integer_literal(expr: &Expr) -> Option<(bool, &LitInt)> {
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => Some((false, lit)),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match ungroup(expr) {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => Some((true, lit)),
            _ => None,
        },
        _ => None,
    }
}

/// Errors gathered so that one build reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Extend<syn::Error> for Errors {
    fn extend<I: IntoIterator<Item = syn::Error>>(&mut self, errors: I) {
        for error in errors {
            self.push(error);
        }
    }
}
