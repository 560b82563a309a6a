{{/* RBAC rules shared by the Roles and ClusterRoles of rbac.yaml. */}}

{{/* kopf's rules in each watched namespace. */}}
{{- define "qorch.rules.kopfNamespaced" -}}
# Framework: posting Events about handlers, and our own Events about each job.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.peering.enabled }}
# Framework: knowing which other operators run (peering).
- apiGroups: [kopf.dev]
  resources: [{{ .Values.watch.clusterWide | ternary "clusterkopfpeerings" "kopfpeerings" }}]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}

{{/* qorch's rules in each watched namespace. */}}
{{- define "qorch.rules.operator" -}}
# Watching and handling our kinds; kopf keeps its progress in annotations and finalizers.
- apiGroups: [qorch.dev]
  resources: [quantumnodes, entanglementlinks, distributedjobs]
  verbs: [get, list, watch, patch]
# Status is written through the status subresource.
- apiGroups: [qorch.dev]
  resources: [quantumnodes/status, entanglementlinks/status, distributedjobs/status]
  verbs: [get, patch]
# Owner references with blockOwnerDeletion on what a QuantumNode owns (checked where the
# OwnerReferencesPermissionEnforcement admission plugin is on).
- apiGroups: [qorch.dev]
  resources: [quantumnodes/finalizers]
  verbs: [update]
# The QPU agent of each `aer` QuantumNode: created, read back, patched when the spec
# changes. Never deleted by the operator: garbage collection follows the owner references.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch]
# Node identities: one Secret per `aer` QuantumNode, created and never read back (the
# public key is recorded on the agent's Deployment). No get, list or watch: the operator
# cannot read any Secret here, its own included. A create cannot be limited by name.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
# Circuits by reference (spec.circuit.configMapRef), read by name.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# The physical state of the namespace's simulated links, one key per link, which the agent
# pods mount: patched by name, created with the first link (a create cannot be limited to
# one name).
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [qorch-link-states]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
# Jobs queued in Kueue (docs/kueue.md): a Workload per job, watched, finished with the job
# (deleted with it by garbage collection: it is owned), its admission given back after an
# eviction; the LocalQueue it names.
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [get, list, watch, create, patch]
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads/status]
  verbs: [get, update]
- apiGroups: [kueue.x-k8s.io]
  resources: [localqueues]
  verbs: [get]
{{- end }}
