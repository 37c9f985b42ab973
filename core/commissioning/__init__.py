"""The commissioning flow: register, place, credential, swap and retire devices."""
