using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// SentencePiece BPE encoding, following google/sentencepiece (bpe_model.cc Model::SampleEncode without dropout,
/// sentencepiece_processor.cc Encode, normalizer.cc for the identity normalizer): the text gets the dummy-prefix
/// space and "▁" for spaces, is split into code points (user-defined pieces kept whole), then the adjacent pair whose
/// concatenation is a piece with the highest score is merged, <b>leftmost first on equal scores</b>, until none is
/// left. Pieces not in the vocabulary fall back to &lt;0xNN&gt; byte pieces (or &lt;unk&gt;).
/// </summary>
/// <remarks>
/// Lowbit does not use Microsoft.ML.Tokenizers' LlamaTokenizer to encode because its SentencePieceBpeModel
/// (2.0.1) breaks score ties rightmost first (SymbolPair.CompareTo orders equal scores by descending left index):
/// on Llama 2, 40 × "a" gives [29099 "▁aa", 7340 "aa", 27137 "aaaa" × 9] where sentencepiece and llama2.c's run.c
/// give [263 "▁a", 27137 × 9, 7340, 29874 "a"]. Repeated characters (indentation, "!!!!", "----") hit such ties.
/// </remarks>
internal sealed class SentencePieceBpeEncoder
{
    private const char SpaceSymbol = '\u2581';

    private readonly SentencePieceModel _model;
    // Pieces BPE may produce: normal, user-defined and unused ones (unused are split again at the end).
    private readonly Dictionary<string, int> _pieces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly string[] _userDefined;
    private readonly int[] _byteIds = new int[256];

    public SentencePieceBpeEncoder(SentencePieceModel model, string path)
    {
        if (model.TreatWhitespaceAsSuffix)
            throw new NotSupportedException($"{path}: treat_whitespace_as_suffix is not supported");
        if (model.PrecompiledCharsmapLength > 0)
            throw new NotSupportedException(
                $"{path}: normalizer \"{model.NormalizerName}\" rewrites characters (precompiled_charsmap); Lowbit supports the identity normalizer only");
        _model = model;
        Array.Fill(_byteIds, -1);
        var userDefined = new List<string>();
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            SentencePiece p = model.Pieces[id];
            switch (p.Type)
            {
                case SentencePieceType.Normal or SentencePieceType.Unused:
                    _pieces.TryAdd(p.Piece, id);
                    break;
                case SentencePieceType.UserDefined:
                    _pieces.TryAdd(p.Piece, id);
                    userDefined.Add(p.Piece);
                    break;
                case SentencePieceType.Byte:
                    _byteIds[TokenDecodeTable.ParseBytePiece(p.Piece, id, path)] = id;
                    break;
            }
        }
        _userDefined = [.. userDefined.OrderByDescending(p => p.Length)];
        _lookup = _pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        if (model.ByteFallback && Array.IndexOf(_byteIds, -1) >= 0)
            throw new InvalidDataException($"{path}: byte_fallback is set but not all 256 byte pieces <0x00>..<0xFF> exist");
    }

    public void Encode(string text, List<int> ids)
    {
        string normalized = Normalize(text);
        if (normalized.Length == 0)
            return;

        // Symbols are a linked list over normalized[start, start+length); a merged-away symbol has length 0.
        int n = normalized.Length;
        var start = new int[n];
        var length = new int[n];
        var prev = new int[n];
        var next = new int[n];
        var frozen = new bool[n];
        int count = 0;
        for (int pos = 0; pos < n; count++)
        {
            string? user = MatchUserDefined(normalized, pos);
            int len = user?.Length ?? (char.IsHighSurrogate(normalized[pos]) && pos + 1 < n && char.IsLowSurrogate(normalized[pos + 1]) ? 2 : 1);
            (start[count], length[count], frozen[count], prev[count]) = (pos, len, user is not null, count - 1);
            pos += len;
            next[count] = pos < n ? count + 1 : -1;
        }

        // Highest score first; on equal scores the leftmost pair (sentencepiece's SymbolPairComparator).
        var agenda = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(
            Comparer<(float Score, int Left)>.Create((a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left)));
        Dictionary<string, (string Left, string Right)>? unusedMerges = null;
        for (int i = 1; i < count; i++)
            TryAddPair(i - 1, i);

        while (agenda.TryDequeue(out (int Left, int Right, int Length) top, out _))
        {
            // Stale: one side was merged into something else since the pair was queued.
            if (length[top.Left] == 0 || length[top.Right] == 0 || length[top.Left] + length[top.Right] != top.Length)
                continue;
            length[top.Left] = top.Length;
            length[top.Right] = 0;
            next[top.Left] = next[top.Right];
            if (next[top.Right] >= 0)
                prev[next[top.Right]] = top.Left;
            TryAddPair(prev[top.Left], top.Left);
            TryAddPair(top.Left, next[top.Left]);
        }

        bool previousUnknown = false;
        for (int i = 0; i >= 0; i = next[i])
            Emit(normalized.Substring(start[i], length[i]), ids, unusedMerges, ref previousUnknown);

        void TryAddPair(int left, int right)
        {
            if (left < 0 || right < 0 || frozen[left] || frozen[right])
                return;
            ReadOnlySpan<char> merged = normalized.AsSpan(start[left], length[left] + length[right]);
            if (!_lookup.TryGetValue(merged, out int id))
                return;
            agenda.Enqueue((left, right, merged.Length), (_model.Pieces[id].Score, left));
            if (_model.Pieces[id].Type == SentencePieceType.Unused)
            {
                unusedMerges ??= new(StringComparer.Ordinal);
                unusedMerges[merged.ToString()] = (normalized.Substring(start[left], length[left]), normalized.Substring(start[right], length[right]));
            }
        }
    }

    /// <summary>Identity normalization: optional whitespace cleanup, the dummy-prefix space, spaces as "▁".</summary>
    private string Normalize(string text)
    {
        if (_model.RemoveExtraWhitespaces)
            text = string.Join(' ', text.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        if (text.Length == 0)
            return "";
        if (_model.AddDummyPrefix)
            text = " " + text;
        return _model.EscapeWhitespaces ? text.Replace(' ', SpaceSymbol) : text;
    }

    private string? MatchUserDefined(string text, int position)
    {
        foreach (string piece in _userDefined)
            if (text.AsSpan(position).StartsWith(piece, StringComparison.Ordinal))
                return piece;
        return null;
    }

    /// <summary>Appends the id(s) of a final symbol: unused pieces are split back into the pieces they were merged
    /// from, unknown ones become byte pieces, or one &lt;unk&gt; per run of unknown symbols without byte fallback.</summary>
    private void Emit(string piece, List<int> ids, Dictionary<string, (string Left, string Right)>? unusedMerges, ref bool previousUnknown)
    {
        if (_pieces.TryGetValue(piece, out int id))
        {
            if (_model.Pieces[id].Type == SentencePieceType.Unused && unusedMerges is not null && unusedMerges.TryGetValue(piece, out var parts))
            {
                Emit(parts.Left, ids, unusedMerges, ref previousUnknown);
                Emit(parts.Right, ids, unusedMerges, ref previousUnknown);
                return;
            }
            ids.Add(id);
            previousUnknown = false;
            return;
        }
        if (_model.ByteFallback)
        {
            foreach (byte b in Encoding.UTF8.GetBytes(piece))
                ids.Add(_byteIds[b]);
            return;
        }
        if (!previousUnknown)
            ids.Add(_model.UnkId);
        previousUnknown = true;
    }
}
