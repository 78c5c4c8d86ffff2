"""The Pulumi program: settings -> one environment component per cloud -> stack outputs."""
