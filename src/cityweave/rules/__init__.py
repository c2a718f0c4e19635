"""Rules: triggers, conditions and actions (model), household modes, scenes and automations."""
