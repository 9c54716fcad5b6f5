package certstore

// Abandon stops renewing a held lock without releasing it, as a crashed process would.
func (s *Store) Abandon(name string) {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	close(h.stop)
	<-h.done
}
