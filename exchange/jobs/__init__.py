"""Jobs: state machine, runner, executors, scheduler, webhooks."""
