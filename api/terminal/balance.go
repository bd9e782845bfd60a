package terminal

// Balance reads the committed balance of the card in the field with the
// session key, changing nothing on the card (a balance check at the bar).
func (t *Terminal) Balance(card Card) (int64, error) {
	t.cardMu.Lock()
	defer t.cardMu.Unlock()
	s, _, err := t.open(card)
	if err != nil {
		return 0, err
	}
	st, err := s.Read()
	if err != nil {
		return 0, err
	}
	return st.Balance, nil
}
