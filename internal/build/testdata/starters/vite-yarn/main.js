document.getElementById('app').textContent += location.pathname === '/about' ? ': about (client route)' : ''
