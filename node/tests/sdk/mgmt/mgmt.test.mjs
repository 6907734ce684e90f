// @knocklabs/mgmt against Herald: workflows (upsert, validate, get, list, activate) and channels.
// Environment: KNOCK_MGMT_BASE_URL (a node), KNOCK_SERVICE_TOKEN.
import { test } from "node:test";
import assert from "node:assert/strict";
import KnockMgmt from "@knocklabs/mgmt";

const client = new KnockMgmt({ maxRetries: 2 });
const environment = "development";
const key = `mgmt-${Date.now().toString(36)}`;

const workflow = {
  name: "Mgmt welcome",
  categories: ["onboarding"],
  steps: [
    {
      ref: "feed",
      type: "channel",
      channel_key: "in-app",
      channel_type: "in_app_feed",
      template: { markdown_body: "Welcome, {{ recipient.name }}" },
    },
  ],
};

test("validate, upsert, get, list and activate a workflow", async () => {
  const validated = await client.workflows.validate(key, { environment, workflow });
  assert.equal(validated.workflow.valid, true);

  const upserted = await client.workflows.upsert(key, {
    environment,
    workflow,
    commit: true,
    commit_message: "first",
  });
  assert.equal(upserted.workflow.key, key);
  assert.equal(upserted.workflow.active, true);
  assert.equal(upserted.workflow.steps[0].ref, "feed");
  assert.ok(upserted.workflow.sha);

  const fetched = await client.workflows.retrieve(key, { environment });
  assert.equal(fetched.name, "Mgmt welcome");
  assert.deepEqual(fetched.categories, ["onboarding"]);

  const keys = [];
  for await (const w of client.workflows.list({ environment })) keys.push(w.key);
  assert.ok(keys.includes(key), keys.join(","));

  const off = await client.workflows.activate(key, { environment, status: false });
  assert.equal(off.workflow.active, false);
  const on = await client.workflows.activate(key, { environment, status: true });
  assert.equal(on.workflow.active, true);
});

test("an invalid workflow is refused with every problem listed", async () => {
  const bad = {
    name: "Broken",
    steps: [
      { ref: "a", type: "channel", channel_key: "nope", channel_type: "email", template: { subject: "x" } },
      { ref: "a", type: "teleport" },
    ],
  };
  await assert.rejects(client.workflows.upsert(`${key}-bad`, { environment, workflow: bad }), (err) => {
    assert.equal(err.status, 422);
    const fields = err.error.errors.map((e) => e.field);
    assert.ok(fields.includes("steps[0].channel_key"), fields.join(","));
    assert.ok(fields.some((f) => f.startsWith("steps[1]")), fields.join(","));
    return true;
  });
  await assert.rejects(client.workflows.retrieve(`${key}-bad`, { environment }), (err) => err.status === 404);
});

test("channels are listed with the defaults", async () => {
  const channels = [];
  for await (const c of client.channels.list()) channels.push(c);
  const byKey = Object.fromEntries(channels.map((c) => [c.key, c]));
  assert.equal(byKey["in-app"].type, "in_app_feed");
  assert.equal(byKey["email"].type, "email");
  assert.equal(byKey["webhook"].type, "http");
  assert.match(byKey["in-app"].id, /^[0-9a-f-]{36}$/);
});
