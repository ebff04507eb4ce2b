//! Checks findings against a shape from an AWS SDK service model (botocore's `service-2.json`
//! shapes, carried as fixtures): every key a member of its shape under its JSON name, types and
//! enums right, required members present. Shared by the GuardDuty and ASFF shape tests.

use serde_json::{Map, Value};

/// Checks JSON values against a botocore service model's shapes.
pub struct Checker {
    shapes: Map<String, Value>,
    root: &'static str,
    open_shapes: &'static [&'static str],
}

impl Checker {
    /// Loads `shapes` (a fixture of botocore shapes) checking findings against `root`; extra
    /// keys are allowed in `open_shapes` only.
    pub fn load(shapes: &str, root: &'static str, open_shapes: &'static [&'static str]) -> Self {
        let model: Value = serde_json::from_str(shapes).expect("fixture is JSON");
        let shapes = model
            .get("shapes")
            .and_then(Value::as_object)
            .cloned()
            .expect("fixture has shapes");
        assert!(shapes.contains_key(root));
        Self {
            shapes,
            root,
            open_shapes,
        }
    }

    fn shape(&self, name: &str) -> &Map<String, Value> {
        self.shapes
            .get(name)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("shape {name} missing from fixture"))
    }

    /// Every problem in `finding`, each with its path.
    pub fn check_finding(&self, finding: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.check(finding, self.root, "finding", &mut errs);
        errs
    }

    fn check(&self, value: &Value, shape_name: &str, path: &str, errs: &mut Vec<String>) {
        if value.is_null() {
            return;
        }
        let shape = self.shape(shape_name);
        let kind = shape.get("type").and_then(Value::as_str).unwrap_or("?");
        match kind {
            "structure" => {
                let Some(obj) = value.as_object() else {
                    errs.push(format!("{path}: expected an object ({shape_name})"));
                    return;
                };
                let members = shape.get("members").and_then(Value::as_object);
                let json_name = |name: &String, m: &Value| {
                    m.get("locationName")
                        .and_then(Value::as_str)
                        .map_or_else(|| name.clone(), str::to_owned)
                };
                for (k, v) in obj {
                    let member = members.and_then(|ms| {
                        ms.iter()
                            .find(|(n, m)| json_name(n, m) == *k)
                            .map(|(_, m)| m)
                    });
                    match member {
                        Some(m) => {
                            let target = m.get("shape").and_then(Value::as_str).unwrap_or("?");
                            self.check(v, target, &format!("{path}.{k}"), errs);
                        }
                        None if self.open_shapes.contains(&shape_name) => {}
                        None => errs.push(format!("{path}.{k}: not a member of {shape_name}")),
                    }
                }
                let required = shape.get("required").and_then(Value::as_array);
                for req in required.into_iter().flatten().filter_map(Value::as_str) {
                    let Some(m) = members.and_then(|ms| ms.get(req)) else {
                        continue;
                    };
                    let jn = json_name(&req.to_owned(), m);
                    if obj.get(&jn).is_none_or(Value::is_null) {
                        errs.push(format!("{path}.{jn}: required by {shape_name}, missing"));
                    }
                }
            }
            "list" => {
                let Some(items) = value.as_array() else {
                    errs.push(format!("{path}: expected a list"));
                    return;
                };
                let member = shape
                    .get("member")
                    .and_then(|m| m.get("shape"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                for (i, v) in items.iter().enumerate() {
                    self.check(v, member, &format!("{path}[{i}]"), errs);
                }
            }
            "map" => {
                let Some(obj) = value.as_object() else {
                    errs.push(format!("{path}: expected a map"));
                    return;
                };
                let vshape = shape
                    .get("value")
                    .and_then(|m| m.get("shape"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                for (k, v) in obj {
                    self.check(v, vshape, &format!("{path}[{k:?}]"), errs);
                }
            }
            "string" => match value.as_str() {
                None => errs.push(format!("{path}: expected a string, got {value}")),
                Some(s) => {
                    let allowed = shape.get("enum").and_then(Value::as_array);
                    if allowed.is_some_and(|a| !a.iter().any(|v| v.as_str() == Some(s))) {
                        errs.push(format!("{path}: {s:?} is not one of {shape_name}'s values"));
                    }
                }
            },
            "integer" | "long" => {
                if !(value.is_i64() || value.is_u64()) {
                    errs.push(format!("{path}: expected an integer, got {value}"));
                }
            }
            "double" | "float" => {
                if !value.is_number() {
                    errs.push(format!("{path}: expected a number, got {value}"));
                }
            }
            "boolean" => {
                if !value.is_boolean() {
                    errs.push(format!("{path}: expected a boolean, got {value}"));
                }
            }
            "timestamp" => {
                if !(value.is_string() || value.is_number()) {
                    errs.push(format!("{path}: expected a timestamp, got {value}"));
                }
            }
            other => errs.push(format!(
                "{path}: shape {shape_name} has unknown type {other}"
            )),
        }
    }
}
