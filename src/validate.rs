//! Parameter validation: the JSON Schema plus the naming rule, with messages a
//! person can act on. The browser runs this too, so the form shows the same errors.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{FieldKind, Naming, ResourceType};
use crate::{secret, template};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Top-level property name; "" for the whole object.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// "storage_gb must be at least 10", or just the message for the whole object.
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} {}", self.field, self.message)
        }
    }
}

/// Several field errors as one sentence, for places that cannot show them by field.
pub fn describe_all(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parameters larger than this, as JSON, are refused before any rule runs: a form
/// never needs more, and every rule's cost (and every answer that lists the
/// problems) grows with the input.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

/// The problems listed per field; the rest are counted in one more line, so a
/// list of ten thousand wrong items gets a readable answer, not a megabyte.
pub const MAX_ERRORS_PER_FIELD: usize = 10;

/// Compiling a schema is costly; callers build one per type and keep it.
pub struct ParamValidator {
    schema: Validator,
    name_rule: NameRule,
    ty: ResourceType,
    name_field: String,
}

impl std::fmt::Debug for ParamValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamValidator")
            .field("type", &self.ty.name)
            .finish_non_exhaustive()
    }
}

impl ParamValidator {
    pub fn new(ty: &ResourceType) -> Result<ParamValidator, String> {
        let schema = compile_schema(&ty.parameters)
            .map_err(|e| format!("the parameters schema of {:?} is invalid: {e}", ty.name))?;
        let name_rule = NameRule::new(&ty.naming)
            .map_err(|e| format!("the naming rule of {:?}: {e}", ty.name))?;
        let name_field = if ty.has_param("name") { "name" } else { "" };
        Ok(ParamValidator {
            schema,
            name_rule,
            ty: ty.clone(),
            name_field: name_field.to_string(),
        })
    }

    pub fn check(&self, params: &Value) -> Vec<FieldError> {
        if let Some(too_large) = oversized(params) {
            return vec![too_large];
        }
        let params = without_nulls(params);
        let (params, kept) = without_secret_placeholders(&self.ty, params);
        let mut errors: Vec<FieldError> = self
            .schema
            .iter_errors(&params)
            .flat_map(|e| describe(&e, &self.ty))
            .filter(|e| !kept.contains(&e.field))
            .map(|e| without_secret_value(&self.ty, &params, e))
            .collect();
        errors.extend(control_characters(&params));
        errors.extend(undeclared_keys(&self.ty, &params));
        match self.name_of(&params) {
            Ok(_) => {}
            // A missing parameter is already reported as required; don't repeat it.
            Err(_) if !errors.is_empty() => {}
            Err(e) => errors.push(e),
        }
        capped(dedup(errors))
    }

    /// The type this validator was built for.
    pub fn resource_type(&self) -> &ResourceType {
        &self.ty
    }

    /// What the naming template makes of these parameters, without the naming
    /// rule: how an action tells whether it would rename its asset even when the
    /// rule has changed since the asset was named.
    pub fn rendered_name(&self, params: &Value) -> Option<String> {
        let params = without_nulls(params);
        let ctx = template::context(&self.ty, &params, None);
        template::render_str(&self.ty.naming.template, &ctx).ok()
    }

    pub fn resource_name(&self, params: &Value) -> Result<String, FieldError> {
        self.name_of(&without_nulls(params))
    }

    fn name_of(&self, params: &Value) -> Result<String, FieldError> {
        let ctx = template::context(&self.ty, params, None);
        let name = template::render_str(&self.ty.naming.template, &ctx).map_err(|e| {
            FieldError::new(
                &self.name_field,
                format!("cannot build the resource name: {e}"),
            )
        })?;
        self.name_rule
            .check(&name)
            .map_err(|m| FieldError::new(&self.name_field, m))?;
        Ok(name)
    }
}

pub fn local_check(ty: &ResourceType, params: &Value) -> Vec<FieldError> {
    match ParamValidator::new(ty) {
        Ok(validator) => validator.check(params),
        Err(message) => vec![FieldError::new("", message)],
    }
}

/// The longest review comment or resolve note: a page of text. Longer ones would
/// be stored, audited and posted to chat whole (a Matrix event holds 64 KB).
pub const MAX_NOTE_CHARS: usize = 4_000;

/// A comment or note as it is kept: trimmed, and with a form's `\r\n` line breaks
/// as `\n`, so that a browser's `maxlength` (which counts a line break once)
/// and the length rule below count alike.
pub fn note_text(text: &str) -> String {
    text.trim().replace("\r\n", "\n")
}

/// A reviewer's comment or an operator's note (see [`note_text`]), checked: at most
/// [`MAX_NOTE_CHARS`] characters, and no control characters but line breaks and
/// tabs. `field` names the form field in the error.
pub fn note_error(field: &str, text: &str) -> Option<FieldError> {
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Some(FieldError::new(
            field,
            format!("is {chars} characters long; at most {MAX_NOTE_CHARS} are kept"),
        ));
    }
    text.chars()
        .any(unfit_in_text)
        .then(|| FieldError::new(field, UNFIT_TEXT))
}

/// The rule [`unfit_in_text`] states, as an error message.
pub const UNFIT_TEXT: &str =
    "must not contain control characters or invisible direction or spacing marks";

/// A character no text people write to each other needs: a control character
/// but a line break or a tab, or an invisible mark that reverses or isolates
/// the direction of what follows or hides between letters, which would make a
/// comment, a note or a parameter read differently from what is stored
/// ("Trojan Source"): the format characters, tag characters (which can carry a
/// whole hidden text; the price is the few subdivision flags built of them),
/// and the fillers and separators that draw as nothing; and the Unicode line
/// and paragraph separators (U+2028, U+2029), which are no line break to the
/// checks that allow `\n` yet start a new line where the text is shown, so a
/// value could add a line of its own to a message that quotes it. Joiners
/// (U+200C, U+200D), variation selectors, the soft hyphen (pasted from
/// documents) and the Mongolian vowel separator stay: writing uses them.
pub fn unfit_in_text(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        || matches!(
            c,
            '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// The integer a JSON number stands for: `64`, and also `64.0` or `6.4e1`, which
/// JSON Schema counts as the integer 64 but [`Value::as_i64`] does not. None for
/// a fraction, a number out of range, or anything that is not a number.
pub fn whole_number(value: &Value) -> Option<i64> {
    // 2^63 as a float: the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let float = value.as_f64()?;
    (float.fract() == 0.0 && (-LIMIT..LIMIT).contains(&float)).then_some(float as i64)
}

/// The parameters with every `integer` parameter given as `64.0` or `6.4e1` turned
/// into the integer itself. The schema accepts such a value, so without this a
/// quota sum, a quota scope and a template would each read it their own way (a sum
/// skipped, "64.0" rendered into a manifest); [`crate::secret::split`] applies it
/// before anything checks, counts, renders or stores parameters.
pub fn canonical_integers(ty: &ResourceType, params: &Value) -> Value {
    let Value::Object(map) = params else {
        return params.clone();
    };
    let canonical = map
        .iter()
        .map(|(name, value)| {
            let integer = (value.is_f64() && ty.is_integer_param(name))
                .then(|| whole_number(value))
                .flatten();
            (
                name.clone(),
                integer.map_or_else(|| value.clone(), Value::from),
            )
        })
        .collect();
    Value::Object(canonical)
}

/// Whether a NUL character is anywhere in the value: PostgreSQL's text cannot
/// hold one, so such a value is never looked up (nothing stored can match it).
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Text parameters end up in paths, manifests, commands and commit messages: no
/// control character but a line break or a tab belongs in any of them (a NUL
/// cannot even be a git path). One error per parameter, never quoting the value.
fn control_characters(params: &Value) -> Vec<FieldError> {
    fn holds_one(value: &Value) -> bool {
        match value {
            Value::String(text) => text.chars().any(unfit_in_text),
            Value::Array(items) => items.iter().any(holds_one),
            // A free-form object's keys are rendered and shown as its values are.
            Value::Object(map) => map
                .iter()
                .any(|(key, value)| key.chars().any(unfit_in_text) || holds_one(value)),
            _ => false,
        }
    }
    let Value::Object(map) = params else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, value)| holds_one(value))
        .map(|(name, _)| FieldError::new(name, UNFIT_TEXT))
        .collect()
}

/// Parameters the type does not declare, refused whatever its schema says:
/// they would be stored, rendered and shown without a field on any form.
fn undeclared_keys(ty: &ResourceType, params: &Value) -> Vec<FieldError> {
    let Value::Object(map) = params else {
        return Vec::new();
    };
    map.keys()
        .filter(|key| !ty.has_param(key))
        .map(|key| FieldError::new(shown_key(key), NOT_A_PARAMETER))
        .collect()
}

const NOT_A_PARAMETER: &str = "is not a parameter of this type";

/// A key as an error names it: at most 64 characters, escaped when it holds a
/// character no text may hold (a NUL, a direction mark).
fn shown_key(key: &str) -> String {
    let shown: String = key.chars().take(64).collect();
    if shown.chars().any(unfit_in_text) {
        shown.escape_default().to_string()
    } else {
        shown
    }
}

/// A cleared form field arrives as null and means "not given".
fn without_nulls(params: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A secret stored as its placeholder was checked when it was given; checking the
/// placeholder against the schema would only report that an object is not a text.
/// Returns the parameters without those placeholders and the names taken out (their
/// "is required" is satisfied).
fn without_secret_placeholders(ty: &ResourceType, params: Value) -> (Value, Vec<String>) {
    let Value::Object(mut map) = params else {
        return (params, Vec::new());
    };
    let kept: Vec<String> = ty
        .secret_params()
        .into_iter()
        .filter(|p| map.get(p).is_some_and(|v| secret::is_placeholder_of(v, p)))
        .collect();
    for param in &kept {
        map.remove(param);
    }
    (Value::Object(map), kept)
}

/// A message about a secret must not quote it (the schema engine's fallback texts
/// repeat the offending value).
pub(crate) fn without_secret_value(
    ty: &ResourceType,
    params: &Value,
    error: FieldError,
) -> FieldError {
    let value = params.get(&error.field).and_then(Value::as_str);
    match value {
        Some(value)
            if !value.is_empty() && ty.is_secret(&error.field) && error.message.contains(value) =>
        {
            FieldError::new(
                error.field,
                "is not valid (the value is secret and not repeated here)",
            )
        }
        _ => error,
    }
}

/// Compiles a JSON Schema the way every rule of Slipway's is compiled. `format`
/// is checked: under draft 2020-12 (the default) JSON Schema only notes it, so
/// `format: email` would let any text through. A format the engine does not
/// know fails the compile instead of checking nothing.
pub fn compile_schema(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(schema)
}

/// The whole-object error for parameters over [`MAX_PARAMS_BYTES`]. Callers
/// check it before anything else reads the parameters (a lookup, a render).
pub fn oversized(params: &Value) -> Option<FieldError> {
    let size = serde_json::to_string(params).map_or(usize::MAX, |json| json.len());
    (size > MAX_PARAMS_BYTES).then(|| {
        FieldError::new(
            "",
            format!(
                "the parameters take {size} bytes as JSON; at most {MAX_PARAMS_BYTES} are accepted"
            ),
        )
    })
}

fn dedup(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut seen = std::collections::HashSet::with_capacity(errors.len());
    errors
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect()
}

/// At most [`MAX_ERRORS_PER_FIELD`] problems per field, in their order, and for
/// a field with more, one line that counts the rest.
fn capped(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut listed: std::collections::HashMap<String, usize> = Default::default();
    let mut out = Vec::with_capacity(errors.len().min(64));
    let mut more: Vec<(String, usize)> = Vec::new();
    for error in errors {
        let count = listed.entry(error.field.clone()).or_default();
        *count += 1;
        if *count <= MAX_ERRORS_PER_FIELD {
            out.push(error);
        } else if let Some((_, n)) = more.iter_mut().find(|(field, _)| *field == error.field) {
            *n += 1;
        } else {
            more.push((error.field, 1));
        }
    }
    out.extend(
        more.into_iter()
            .map(|(field, n)| FieldError::new(field, format!("has {n} more problems like these"))),
    );
    out
}

/// A type's naming rule, compiled once: the name's pattern and its length limit.
/// The pattern runs on the JSON Schema engine, so it means in the catalog exactly
/// what a `pattern` in a parameter schema means.
pub struct NameRule {
    pattern: Validator,
    max_length: usize,
    description: String,
}

impl NameRule {
    pub fn new(naming: &Naming) -> Result<NameRule, String> {
        let schema = serde_json::json!({ "type": "string", "pattern": naming.pattern });
        let pattern = compile_schema(&schema)
            .map_err(|e| format!("{:?} is not a valid pattern: {e}", naming.pattern))?;
        Ok(NameRule {
            pattern,
            max_length: naming.max_length,
            description: naming.pattern_description.clone(),
        })
    }

    pub fn check(&self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("the resource name is empty".into());
        }
        let length = name.chars().count();
        if length > self.max_length {
            return Err(format!(
                "the resource name {name:?} is {length} characters long, at most {} are allowed",
                self.max_length
            ));
        }
        if self.pattern.is_valid(&Value::from(name)) {
            Ok(())
        } else {
            Err(format!(
                "the resource name {name:?} must be {}",
                self.description
            ))
        }
    }
}

/// What a rule the messages below do not word says about a secret parameter:
/// the schema engine's own text quotes the value (JSON-escaped, so a check for
/// the value as typed would miss it).
const SECRET_RULE_BROKEN: &str = "is not valid (the value is secret and not repeated here)";

/// `ty` tells which fields are secret: their messages never come from the engine.
fn describe(error: &ValidationError<'_>, ty: &ResourceType) -> Vec<FieldError> {
    let mut segments = error
        .instance_path()
        .as_str()
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"));
    let field = segments.next().unwrap_or_default();
    let prefix = match segments.next() {
        Some(index) => match index.parse::<usize>() {
            Ok(i) => format!("item {} ", i + 1),
            Err(_) => format!("{index} "),
        },
        None => String::new(),
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![FieldError::new(name, "is required")]
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| FieldError::new(shown_key(name), NOT_A_PARAMETER))
            .collect(),
        kind => {
            let text = match worded(kind) {
                Some(text) => text,
                None if quotes_a_secret(&field, ty) => SECRET_RULE_BROKEN.to_string(),
                None => error.to_string(),
            };
            vec![FieldError::new(field, format!("{prefix}{text}"))]
        }
    }
}

/// Whether the engine's text about `field` may hold a secret's value: the field
/// is secret, or it is the whole object of a type with secrets (a rule over
/// several fields quotes them all).
fn quotes_a_secret(field: &str, ty: &ResourceType) -> bool {
    if field.is_empty() {
        !ty.secret_params().is_empty()
    } else {
        ty.is_secret(field)
    }
}

/// The message of a rule in our words, which never repeat the value; `None` for
/// a rule only the schema engine can word.
fn worded(kind: &ValidationErrorKind) -> Option<String> {
    use ValidationErrorKind as K;
    Some(match kind {
        K::Pattern { pattern } => format!("must match the pattern {pattern}"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::MinLength { limit } => format!("must be at least {limit} characters long"),
        K::MaxLength { limit } => format!("must be at most {limit} characters long"),
        K::MinItems { limit } => format!("must have at least {limit} items"),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::UniqueItems => "must not contain duplicates".into(),
        K::Enum { options } => format!("must be one of: {}", list(options)),
        K::Constant { expected_value } => format!("must be {}", plain(expected_value)),
        K::Format { format } => format!("must be a valid {format}"),
        K::Type { kind } => format!("must be {}", type_name(kind)),
        _ => return None,
    })
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(options: &Value) -> String {
    match options {
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => plain(other),
    }
}

fn type_name(kind: &TypeKind) -> String {
    let one = |t: &JsonType| match t {
        JsonType::Array => "a list",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "an integer",
        JsonType::Null => "empty",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a text",
    };
    match kind {
        TypeKind::Single(t) => one(t).to_string(),
        TypeKind::Multiple(set) => set.iter().map(|t| one(&t)).collect::<Vec<_>>().join(" or "),
    }
}

/// A form's values from text pairs (a chat command, a prefilled portal link):
/// the type's defaults, then each given value read the way its field reads it;
/// a key the form has no field for stays text, for validation to name. A secret
/// is never taken from text: the keys refused for it come back apart.
pub fn values_from_text(
    ty: &ResourceType,
    given: &[(String, String)],
) -> (serde_json::Map<String, Value>, Vec<String>) {
    let fields = ty.fields();
    let mut values = ty.default_params();
    let mut secrets = Vec::new();
    for (key, raw) in given {
        let field = fields.iter().find(|f| &f.name == key);
        if field.is_some_and(|f| f.secret) || ty.has_secret_value(key) {
            secrets.push(key.clone());
            continue;
        }
        let value = match field {
            Some(field) => coerce_form_value(&field.kind, raw),
            None => Value::String(raw.clone()),
        };
        // An empty field (null) is "not given": it leaves the default in place
        // rather than stand in the parameters as a value other readers would see.
        if !value.is_null() {
            values.insert(key.clone(), value);
        }
    }
    (values, secrets)
}

/// A number box's text as JSON, read as the number box and the API read it:
/// `1.0` and `1e3` are the integers 1 and 1000, a fraction or a number past 64
/// bits stays a number (the schema then names the rule it breaks: an integer,
/// a maximum); `NaN`, `inf` and `1e400` are no number.
fn form_number(text: &str) -> Option<Value> {
    if let Ok(whole) = text.parse::<i64>() {
        return Some(Value::from(whole));
    }
    let number = text.parse::<f64>().ok().filter(|n| n.is_finite())?;
    // Within ±2^53 every whole f64 is exact, so the cast is too.
    let exact = number.fract() == 0.0 && number.abs() <= 9_007_199_254_740_992.0;
    Some(if exact {
        Value::from(number as i64)
    } else {
        Value::from(number)
    })
}

/// Turns what a form field holds into JSON. Text that is not a number stays
/// text, so the schema reports "must be an integer" instead of losing the input.
/// An empty field becomes null, which validation treats as "not given".
pub fn coerce_form_value(kind: &FieldKind, raw: &str) -> Value {
    let trimmed = raw.trim();
    match kind {
        FieldKind::Integer { .. } if trimmed.is_empty() => Value::Null,
        FieldKind::Integer { .. } => {
            form_number(trimmed).unwrap_or_else(|| Value::String(raw.to_string()))
        }
        FieldKind::Boolean => match trimmed {
            "true" | "on" | "yes" => Value::Bool(true),
            "false" | "off" | "no" | "" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        FieldKind::TextList { .. } => Value::Array(
            raw.split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect(),
        ),
        FieldKind::Choice { .. } | FieldKind::Text { .. } if trimmed.is_empty() => Value::Null,
        FieldKind::Choice { .. } | FieldKind::Text { .. } => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod separator_tests {
    use super::*;

    #[test]
    fn line_and_paragraph_separators_are_unfit_in_text() {
        assert!(unfit_in_text('\u{2028}') && unfit_in_text('\u{2029}'));
        assert!(!unfit_in_text('\n') && !unfit_in_text('\t') && !unfit_in_text('é'));
        assert_eq!(
            note_error("note", "fine\u{2029}Request #9 is approved."),
            Some(FieldError::new("note", UNFIT_TEXT))
        );
    }
}
