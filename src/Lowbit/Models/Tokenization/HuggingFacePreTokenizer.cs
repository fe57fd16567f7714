using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// The pre-tokenizer of a Hugging Face byte-level BPE <c>tokenizer.json</c>: first the added tokens are cut out
/// of the raw text (longest first, as <c>tokenizers</c>' AddedVocabulary does), then each split regex is applied
/// in turn to every piece the previous one produced, keeping both the matches and the text between them
/// (HF's Split with behavior "Isolated"; a Sequence applies its members the same way).
/// </summary>
/// <remarks>
/// Hugging Face runs these patterns (Oniguruma) over code points; .NET's Regex runs over UTF-16 units, where a
/// character outside the BMP is two surrogates of category Cs, so "𝔘" (a letter) would not match <c>\p{L}</c>
/// and "𝟙" (a digit) would not match <c>\p{N}</c>. A piece holding surrogate pairs is therefore matched on a proxy
/// string with one character per code point, each astral code point replaced by a BMP character of the same
/// Unicode category, and the match positions are mapped back.
/// </remarks>
internal sealed class HuggingFacePreTokenizer : PreTokenizer
{
    private static readonly char[] s_categoryProxy = BuildCategoryProxies();

    private readonly Regex? _addedTokens;
    private readonly IReadOnlyList<Regex> _splits;

    public HuggingFacePreTokenizer(IEnumerable<string> addedTokens, IReadOnlyList<Regex> splits)
    {
        string[] tokens = [.. addedTokens.Where(t => t.Length > 0).OrderByDescending(t => t.Length)];
        _addedTokens = tokens.Length == 0 ? null : new Regex(string.Join('|', tokens.Select(Regex.Escape)), RegexOptions.CultureInvariant);
        _splits = splits;
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => PreTokenize(text.ToString());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        var pieces = new List<(int Offset, int Length)>();
        if (text.Length == 0)
            return pieces;
        int position = 0;
        if (_addedTokens is not null)
        {
            foreach (ValueMatch m in _addedTokens.EnumerateMatches(text))
            {
                Split(text, position, m.Index - position, 0, pieces);
                pieces.Add((m.Index, m.Length));
                position = m.Index + m.Length;
            }
        }
        Split(text, position, text.Length - position, 0, pieces);
        return pieces;
    }

    /// <summary>Splits text[start, start+length) with split regex <paramref name="level"/> and recurses into
    /// every match and every gap with the next one.</summary>
    private void Split(string text, int start, int length, int level, List<(int Offset, int Length)> pieces)
    {
        if (length == 0)
            return;
        if (level == _splits.Count)
        {
            pieces.Add((start, length));
            return;
        }
        int position = start;
        foreach ((int matchStart, int matchLength) in Matches(_splits[level], text.AsSpan(start, length)))
        {
            Split(text, position, start + matchStart - position, level + 1, pieces);
            Split(text, start + matchStart, matchLength, level + 1, pieces);
            position = start + matchStart + matchLength;
        }
        Split(text, position, start + length - position, level + 1, pieces);
    }

    /// <summary>Non-empty matches of <paramref name="regex"/> in <paramref name="segment"/> as (offset, length)
    /// into the segment, matched with code-point semantics (see the class remarks).</summary>
    private static List<(int Offset, int Length)> Matches(Regex regex, ReadOnlySpan<char> segment)
    {
        var matches = new List<(int, int)>();
        if (!HasSurrogates(segment))
        {
            foreach (ValueMatch m in regex.EnumerateMatches(segment))
                if (m.Length > 0)
                    matches.Add((m.Index, m.Length));
            return matches;
        }

        // proxy[i] is code point i; offsets[i] is where it starts in the segment (offsets[^1] = segment end).
        var proxy = new char[segment.Length];
        var offsets = new int[segment.Length + 1];
        int count = 0, offset = 0;
        foreach (Rune rune in segment.EnumerateRunes())
        {
            offsets[count] = offset;
            proxy[count++] = rune.IsBmp ? (char)rune.Value : s_categoryProxy[(int)Rune.GetUnicodeCategory(rune)];
            offset += rune.Utf16SequenceLength;
        }
        offsets[count] = offset;
        foreach (ValueMatch m in regex.EnumerateMatches(proxy.AsSpan(0, count)))
            if (m.Length > 0)
                matches.Add((offsets[m.Index], offsets[m.Index + m.Length] - offsets[m.Index]));
        return matches;
    }

    private static bool HasSurrogates(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
            if (char.IsSurrogate(c))
                return true;
        return false;
    }

    /// <summary>For each Unicode category, one non-ASCII BMP character of that category (ASCII is avoided so a
    /// proxy never matches a literal such as the "s" in <c>'s</c>).</summary>
    private static char[] BuildCategoryProxies()
    {
        var proxies = new char[32];
        for (int c = 0x80; c <= 0xFFFF; c++)
        {
            if (char.IsSurrogate((char)c))
                continue;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory((char)c);
            if (proxies[category] == '\0')
                proxies[category] = (char)c;
        }
        return proxies;
    }
}
