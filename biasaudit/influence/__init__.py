"""Cross-loss influence: which training documents move a bias measure, and by how much.

``delta_bias_if_removed(d) ~= grad B(theta)^T H^-1 grad L_d(theta)``: the predicted change of the bias measure B
(e.g. a WEAT effect size) if document d is removed and the model retrained; L is the summed training objective,
H its Hessian at the trained parameters, L_d the part of L that comes from d. A negative value means the document
drives the bias up (removing it lowers B). ``delta_bias_if_upweighted(d)`` (one more copy of d) is its negative.
"""
