"""How requests come in and answers leave: JSON read within bounds, opaque listing cursors, the JSON routes'
error shape and the HTML pages a person sees. Imports only the root modules."""
