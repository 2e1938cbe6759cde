//! OpenShift mirror-set rendering as the Machine Config Operator does it (issue: render).
