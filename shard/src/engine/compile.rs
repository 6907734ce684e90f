//! A workflow ready to run: its templates parsed and its trigger-data schema compiled, once per
//! workflow version. The node caches one [`CompiledWorkflow`] per (key, version) in an `Arc` and
//! shares it across shard executors, so it is `Send + Sync` and immutable.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::definition::{Problem, Step, StepKind, Workflow};
use super::template::{JsonTemplate, StepTemplate};

pub struct CompiledWorkflow {
    workflow: Workflow,
    /// Channel step templates by step ref.
    templates: BTreeMap<String, StepTemplate>,
    /// `update_data` payloads by step ref.
    data_updates: BTreeMap<String, JsonTemplate>,
    schema: Option<jsonschema::Validator>,
}

impl fmt::Debug for CompiledWorkflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledWorkflow")
            .field("workflow", &self.workflow)
            .field("templates", &self.templates)
            .field("data_updates", &self.data_updates)
            .field("has_schema", &self.schema.is_some())
            .finish()
    }
}

/// Compiles a parsed workflow. Fails only if `w` did not come from
/// [`crate::engine::parse_workflow`] (or was edited since): the problems are the same ones it reports.
pub fn compile(w: Workflow) -> Result<CompiledWorkflow, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut templates = BTreeMap::new();
    let mut data_updates = BTreeMap::new();
    compile_steps(
        &w.steps,
        "steps",
        &mut templates,
        &mut data_updates,
        &mut problems,
    );
    let schema = match &w.trigger_data_json_schema {
        None => None,
        Some(s) => match jsonschema::validator_for(s) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(Problem::new(
                    "trigger_data_json_schema",
                    format!("is not a valid JSON Schema: {e}"),
                ));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CompiledWorkflow {
        workflow: w,
        templates,
        data_updates,
        schema,
    })
}

fn compile_steps(
    steps: &[Step],
    path: &str,
    templates: &mut BTreeMap<String, StepTemplate>,
    data_updates: &mut BTreeMap<String, JsonTemplate>,
    problems: &mut Vec<Problem>,
) {
    for (i, step) in steps.iter().enumerate() {
        let spath = format!("{path}[{i}]");
        match &step.kind {
            StepKind::Channel(c) => {
                if let Some(t) = StepTemplate::compile(
                    c.channel_type,
                    &c.template,
                    c.channel_overrides.as_ref(),
                    &spath,
                    problems,
                ) {
                    templates.insert(step.step_ref.clone(), t);
                }
            }
            StepKind::UpdateData(u) => {
                let dpath = format!("{spath}.settings.data");
                if let Some(t) = JsonTemplate::compile(&u.data, &dpath, problems) {
                    data_updates.insert(step.step_ref.clone(), t);
                }
            }
            // Resolved by the planner at run time; nothing to parse ahead.
            StepKind::Delay(_) => {}
            StepKind::Branch(b) => {
                for (j, branch) in b.branches.iter().enumerate() {
                    let bpath = format!("{spath}.branches[{j}].steps");
                    compile_steps(&branch.steps, &bpath, templates, data_updates, problems);
                }
            }
        }
    }
}

impl CompiledWorkflow {
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Validates trigger `data` against `trigger_data_json_schema` (Ok when there is none), listing
    /// every violation with a path like `data.user.age`.
    pub fn validate_data(&self, data: &Value) -> Result<(), Vec<Problem>> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let problems: Vec<Problem> = schema
            .iter_errors(data)
            .map(|e| {
                let pointer = e.instance_path.to_string();
                let path = std::iter::once("data")
                    .chain(pointer.split('/').filter(|s| !s.is_empty()))
                    .collect::<Vec<_>>()
                    .join(".");
                Problem::new(path, e.to_string())
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub(crate) fn template(&self, step_ref: &str) -> Option<&StepTemplate> {
        self.templates.get(step_ref)
    }

    pub(crate) fn data_update(&self, step_ref: &str) -> Option<&JsonTemplate> {
        self.data_updates.get(step_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::definition::ChannelType;
    use crate::engine::parse_workflow;
    use crate::engine::ChannelInfo;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn compiled_workflows_can_be_shared_across_threads() {
        assert_send_sync::<CompiledWorkflow>();
    }

    #[test]
    fn validate_data_lists_every_violation() {
        let channels = [ChannelInfo {
            id: "c1".into(),
            key: "in-app".into(),
            channel_type: ChannelType::InAppFeed,
            settings: json!({}),
            sandbox: false,
        }];
        let body = json!({"name": "x", "steps": [], "trigger_data_json_schema": {
            "type": "object", "required": ["comment"],
            "properties": {"user": {"type": "object", "properties": {"age": {"type": "integer"}}}},
        }});
        let w = compile(parse_workflow("abc", &body, &channels).expect("valid")).expect("compiles");
        assert_eq!(w.validate_data(&json!({"comment": "hi"})), Ok(()));
        let problems = w
            .validate_data(&json!({"user": {"age": "old"}}))
            .expect_err("invalid");
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["data", "data.user.age"]);

        let no_schema = compile(
            parse_workflow("abc", &json!({"name": "x", "steps": []}), &channels).expect("valid"),
        )
        .expect("compiles");
        assert_eq!(no_schema.validate_data(&json!(null)), Ok(()));
    }
}
