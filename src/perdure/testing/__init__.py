"""The in-process test harness. Not built yet (issue: "Developer experience")."""
