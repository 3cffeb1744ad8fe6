"""From the inbox to counted, blamed, alerted errors: the processor and its blame service."""
