//! JSON rows (HF JSONL exports) with the same typed access as parquet rows.

use super::*;

/// A JSON object read as a row; unknown fields are ignored.
pub struct JsonRow<'a>(pub &'a serde_json::Map<String, Value>);

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl JsonRow<'_> {
    fn field(&self, column: &str, expected: &'static str) -> Result<&Value, FieldError> {
        self.0.get(column).ok_or_else(|| FieldError::Missing {
            column: column.to_string(),
            expected,
        })
    }

    fn wrong(column: &str, v: &Value, expected: &'static str) -> FieldError {
        FieldError::WrongType {
            column: column.to_string(),
            found: json_type(v).to_string(),
            expected,
        }
    }
}

impl Row for JsonRow<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, FieldError> {
        match self.field(column, A_STRING)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            v => Err(Self::wrong(column, v, A_STRING)),
        }
    }

    fn int(&self, column: &str) -> Result<Option<i64>, FieldError> {
        match self.field(column, AN_INTEGER)? {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::wrong(column, v, AN_INTEGER)),
        }
    }

    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, FieldError> {
        match self.field(column, A_STRING_LIST)? {
            Value::Null => Ok(None),
            v @ Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| Self::wrong(column, v, A_STRING_LIST)),
            v => Err(Self::wrong(column, v, A_STRING_LIST)),
        }
    }

    fn meta(&self, column: &str) -> Result<Option<MetaValue>, FieldError> {
        match self.field(column, A_META_VALUE)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(MetaValue::Str(s.clone()))),
            Value::Number(n) => Ok(Some(match n.as_i64() {
                Some(i) => MetaValue::Int(i),
                None => MetaValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            })),
            Value::Array(_) => self.text_list(column).map(|l| l.map(MetaValue::List)),
            v => Err(Self::wrong(column, v, A_META_VALUE)),
        }
    }

    fn has(&self, column: &str) -> bool {
        self.0.contains_key(column)
    }
}
