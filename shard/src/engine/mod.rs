//! The workflow engine core: definitions, conditions, preferences, templates and the planner.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock (time is the caller's
//! `now_ms`), no randomness, no async. The shard leader's executor calls it and turns the
//! resulting [`RunPlan`] into effects; the management API calls [`parse_workflow`] to validate
//! definitions.
//!
//! ```text
//!   PUT /v1/workflows/{key} body ──parse_workflow──> Workflow ──compile──> CompiledWorkflow (Arc, per version)
//!   trigger: CompiledWorkflow::validate_data(data)
//!   per recipient: plan_run(RunInput{workflow, recipient, data, preferences, channel data, now,
//!                                    resume: None, refs: {}})
//!       -> RunPlan { outcome: Completed | ConditionsNotMet | Paused{resume_at_ms, resume},
//!                    steps: [StepRecord { result: Message | Skipped* | Delayed | ... }], data }
//!   at resume_at_ms: plan_run(RunInput{.., data: plan.data, resume: Some(&resume),
//!                                      refs: the run's messages' current statuses})
//! ```
//!
//! Layout: [`definition`] (the model and its Knock JSON), [`validate`] (JSON -> model, every
//! problem with a path), [`conditions`], [`preferences`], [`template`] (Liquid per channel type)
//! over [`liquid_json`] (Knock's forgiving variable lookups), [`liquid_filters`] (`json`) and
//! [`markup`] (Markdown/HTML), [`compile`], [`plan`], [`delay`] (when a delay step ends),
//! [`timestamp`] (timestamp operands).
//!
//! Not supported yet (rejected by validation, never silently ignored): step types other than
//! `channel`, `branch`, `update_data` and `delay`; channel groups; send windows; in-app guides;
//! email partials and layouts. A delay whose field resolves to a window rule is skipped at run
//! time (Knock's rule for invalid values).

pub mod compile;
pub mod conditions;
pub mod definition;
mod delay;
mod liquid_filters;
mod liquid_json;
mod markup;
pub mod plan;
pub mod preferences;
pub mod template;
mod timestamp;
pub mod validate;

pub use compile::{compile, CompiledWorkflow};
pub use conditions::{
    evaluate, evaluate_condition, AnyMember, Condition, ConditionContext, ConditionGroup, Operator,
    StepStatus,
};
pub use definition::{
    workflow_to_json, Branch, BranchStep, ChannelInfo, ChannelStep, ChannelType, DelayStep,
    Problem, Step, StepKind, TimeSpan, TimeUnit, TriggerFrequency, UpdateDataStep, Workflow,
    WorkflowSettings,
};
pub use plan::{
    plan_run, BranchFrame, PlannedMessage, PlannedStatus, ResumePoint, RunInput, RunOutcome,
    RunPlan, StepRecord, StepResult,
};
pub use preferences::{
    evaluate_preferences, merged_preferences, PreferenceDecision, PreferenceInputs,
    PreferenceTarget,
};
pub use validate::parse_workflow;
