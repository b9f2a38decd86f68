"""Call campaigns: tasks per cycle, who calls whom, outcomes and retries, coverage."""
