"""The BPMN language as crmflow runs it: the list of what it runs (support), the parser
(Camunda extensions), the validator that explains every problem of a file, messages between
instances, the RestrictedPython sandbox for scripts and expressions, Camunda's JUEL
expressions, and the forms of user tasks."""
