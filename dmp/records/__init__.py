"""The DMP itself: lifecycle, consent, authorisations, expression space."""
