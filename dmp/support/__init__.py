"""SI Support: helpdesk ticketing."""
