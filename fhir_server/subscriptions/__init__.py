"""R4 Subscriptions (https://hl7.org/fhir/R4/subscription.html): criteria evaluated by the
search engine on every write, notifications by rest-hook (a durable outbox) or websocket."""
